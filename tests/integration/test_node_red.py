"""The Node-RED example flows in a real Node-RED, against a real agent, broker, engine and
registry: the fleet table over HTTP, force-retry, alerts to a webhook, and the Dashboard 2 page
in a real headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe
from tests.integration.node_red import NodeRed
from tests.integration.receivers import WebhookReceiver

SLEEP = ["sh", "-c", "exec sleep 3600"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--no-first-run"]  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    made = WebhookReceiver()
    yield made
    made.close()


@pytest.fixture
def node_red(
    tmp_path: Path, broker: PrivateMosquitto, receiver: WebhookReceiver
) -> Iterator[NodeRed]:
    instance = NodeRed(tmp_path, broker.port, receiver.url)
    instance.start()
    yield instance
    instance.stop()


def _start_seed(
    agent: AgentProcess, probe: MqttProbe, broker: PrivateMosquitto, s: Services
) -> None:
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_BACKOFF_INITIAL="60",  # a retry seen soon was asked for, not scheduled
        FLEET_AGENT_BACKOFF_MAX="60",
    )
    good = service("good", s.image1, 1, SLEEP)
    probe.publish("target", target(1, good, service("bad", s.missing_image, 2)), retain=True)
    agent.start(target_file=False)


def _running(node_red: NodeRed, device_id: str, name: str) -> dict[str, Any] | None:
    row = node_red.row(device_id, name)
    return row if row is not None and row["status"] == "running" else None


def _retried(probe: MqttProbe, since: dict[str, Any]) -> dict[str, Any]:
    """The agent's status of `bad` once it failed again after `since`: a new attempt."""
    t0 = since["error"]["timestamp"]
    doc: dict[str, Any] = probe.wait_json(
        "services/bad", lambda s: s["error"] and s["error"]["timestamp"] > t0, timeout=60
    )
    assert doc["error"]["timestamp"] < since["error"]["nextRetry"]  # before its backoff ended
    return doc


def test_the_flow_serves_the_fleet_table_forces_a_retry_and_calls_the_webhook_on_alerts(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    node_red: NodeRed,
    receiver: WebhookReceiver,
    device_id: str,
) -> None:
    _start_seed(agent, probe, broker, services)
    first = probe.wait_json("services/bad", lambda s: s["error"] is not None)

    row = wait_for(lambda: node_red.row(device_id, "bad"), timeout=30, what="row of bad")
    assert row["status"] == "error" and row["errorType"] == "ImagePullBackOff"
    assert "ImagePullBackOff" in row["reason"] and "manifest unknown" in row["reason"]
    assert row["retryCount"] == 1 and row["nextRetry"] == first["error"]["nextRetry"]
    alerted = wait_for(lambda: (r := node_red.row(device_id, "bad")) and r.get("alert") and r)
    assert alerted["alert"] == {"severity": "warning", "type": "ImagePullBackOff"}
    good = wait_for(lambda: _running(node_red, device_id, "good"))
    assert good["reason"] is None and good["retryCount"] == 0

    # The raised alert reached the webhook the flow calls.
    raised = wait_for(lambda: receiver.bodies("raised"), timeout=30, what="raised posted")
    assert raised[0]["deviceId"] == device_id and raised[0]["service"] == "bad"
    assert raised[0]["severity"] == "warning" and raised[0]["type"] == "ImagePullBackOff"

    # Force retry over HTTP reaches the agent: a new attempt long before the 60 s backoff.
    code, answer = node_red.post("/fleet/retry", {"device": device_id, "service": "bad"})
    assert code == 202 and answer == {"ok": True, "topic": f"fleet/{device_id}/cmd/retry"}
    result = wait_for(lambda: [r for r in probe.all("cmd/result") if r["command"] == "retry"])
    assert result[0]["ok"] and result[0]["services"] == ["bad"]
    _retried(probe, first)
    assert node_red.post("/fleet/retry", {"device": "../x"})[0] == 400

    # Fixed: the flow's table heals and the clearing is posted too.
    fixed = service("bad", services.image2, 2, SLEEP)
    probe.publish("target", target(2, service("good", services.image1, 1, SLEEP), fixed), True)
    wait_for(lambda: _running(node_red, device_id, "bad"), what="bad healed in the table")
    cleared = wait_for(lambda: receiver.bodies("cleared"), timeout=30, what="cleared posted")
    assert cleared[0]["service"] == "bad" and cleared[0]["type"] == "ImagePullBackOff"


def test_the_dashboard_page_in_headless_chromium_shows_the_failing_service_and_retries_it(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    node_red: NodeRed,
    device_id: str,
) -> None:
    _start_seed(agent, probe, broker, services)
    first = probe.wait_json("services/bad", lambda s: s["error"] is not None)
    probe.wait_json("services/good", lambda s: s["serviceStatus"] == "running")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 560})
            page.goto(f"{node_red.url}/dashboard/fleet")
            bad = page.locator(f'tr[data-service="{device_id}/bad"]')
            bad.wait_for(timeout=120_000)
            wait_for(lambda: "ImagePullBackOff" in bad.inner_text(), 60, what="reason shown")
            text = bad.inner_text()
            assert "error" in text and "manifest unknown" in text and "1 / 10" in text
            assert "in " in text  # the countdown to the next retry
            good = page.locator(f'tr[data-service="{device_id}/good"]')
            wait_for(lambda: "running" in good.inner_text(), 60, what="good shown running")
            colour = bad.locator(".status").evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour == "rgb(239, 108, 0)"  # orange: an error with a warning alert
            if shots := os.environ.get("FLEET_SCREENSHOT_DIR"):
                page.screenshot(path=str(Path(shots) / "node-red-dashboard.png"), full_page=True)
            bad.get_by_role("button", name="Retry").click()
            _retried(probe, first)
        finally:
            browser.close()
