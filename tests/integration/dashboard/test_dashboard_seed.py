"""The seed scenario in a real browser: a real agent, broker, engine and registry, the
dashboard as a process, and headless Chromium looking at it without ever reloading."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.dashboard.kit import DashboardProcess
from tests.integration.helpers import REPO, AgentProcess, wait_for
from tests.integration.mqtt_probe import MqttProbe

MAX_RETRIES = 5
SCREENSHOT = REPO / "docs" / "dashboard.png"


def seed_target(services: Services, broken_image: str | None = None, version: int = 1) -> Any:
    doc = json.loads((REPO / "examples" / "target.json").read_text())
    doc["version"] = version
    for svc in doc["apps"]["1001"]["services"]:
        svc["imageName"] = svc["imageName"].replace("127.0.0.1:5000", services.registry)
        if svc["serviceName"] == "broken" and broken_image is not None:
            svc["imageName"] = broken_image
            svc["config"]["command"] = ["sh", "-c", "exec sleep 3600"]
    return doc


def seconds_left(page: Page, device: str) -> int:
    text = page.locator(f'article[data-id="{device}"] li[data-service="broken"] .countdown')
    match = re.search(r"retry in (?:(\d+) min )?(\d+) s", text.inner_text())
    assert match, f"no countdown in {text.inner_text()!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2))


def pulls_of_broken(probe: MqttProbe) -> int:
    events = probe.all("events")
    return sum(1 for e in events if e.get("type") == "pull" and e.get("service") == "broken")


def keep_screenshot(page: Page, tmp_path: Path) -> None:
    """Always taken; copied into docs/ when missing or when FLEET_UPDATE_SCREENSHOTS=1 (so a
    test run does not leave a changed tracked file behind)."""
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("FLEET_UPDATE_SCREENSHOTS") == "1" or not SCREENSHOT.exists():
        shutil.copyfile(shot, SCREENSHOT)


def test_the_seed_scenario_is_live_in_a_browser_from_backoff_to_force_retry_to_healed_to_offline(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    device_id: str,
    dashboard: Callable[..., DashboardProcess],
    page: Page,
    tmp_path: Path,
) -> None:
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_BACKOFF_INITIAL="90",  # the countdown is read long before the next retry
        FLEET_AGENT_BACKOFF_MAX="120",
        FLEET_AGENT_MAX_RETRIES=str(MAX_RETRIES),
    )
    probe.publish("target", seed_target(services), retain=True)
    agent.start(target_file=False)
    board = dashboard()
    page.goto(board.url)
    page.evaluate("window.sameDocument = true")
    row = page.locator(f'article[data-id="{device_id}"]')
    web, broken = row.locator('li[data-service="web"]'), row.locator('li[data-service="broken"]')

    expect(web.locator(".badge")).to_have_text("Running", timeout=60_000)
    expect(broken.locator(".badge")).to_have_text("ImagePullBackOff", timeout=60_000)
    expect(broken.locator(".retries")).to_have_text(f"1/{MAX_RETRIES}")
    first = seconds_left(page, device_id)
    wait_for(lambda: seconds_left(page, device_id) < first, timeout=5, what="countdown ticking")
    panel = page.locator(f'#alerts li.alert[data-device="{device_id}"][data-service="broken"]')
    expect(panel).to_contain_text("ImagePullBackOff")
    expect(row.locator(".avail")).to_have_text("online")
    keep_screenshot(page, tmp_path)

    pulls = pulls_of_broken(probe)
    broken.locator("button.retry").click()
    wait_for(lambda: pulls_of_broken(probe) > pulls, timeout=30, what="the agent pulling again")
    sent = probe.all("cmd/retry")[-1]
    assert sent["service"] == "broken" and sent["requestId"]
    result = wait_for(
        lambda: [r for r in probe.all("cmd/result") if r.get("requestId") == sent["requestId"]],
        what="the command result on MQTT",
    )[0]
    assert result["ok"] and result["services"] == ["broken"]
    expect(broken.locator(".cmd-result")).to_have_text("retry ok: broken")
    expect(page.locator(".toast")).to_contain_text(f"{device_id}/broken: retry ok")

    probe.publish("target", seed_target(services, services.image2, version=2), retain=True)
    expect(broken.locator(".badge")).to_have_text("Running", timeout=60_000)
    expect(panel).to_have_count(0)
    expect(row.locator(".conv")).to_have_text("converged")

    agent.stop()
    expect(row.locator(".avail")).to_have_text("offline", timeout=30_000)
    assert page.evaluate("window.sameDocument") is True  # never reloaded
    assert page.evaluate("window.fleetDashboard.snapshots") == 1
