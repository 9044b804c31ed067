"""Home Assistant MQTT discovery against a real Home Assistant, broker, engine and registry."""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, service, target, wait_for
from tests.integration.home_assistant import HomeAssistant, ha_venv
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture
def ha_probe(broker: PrivateMosquitto, device_id: str) -> Iterator[MqttProbe]:
    """A probe that also watches Home Assistant's discovery topics."""
    client = MqttProbe("127.0.0.1", broker.port, device_id, also=("homeassistant/#",))
    yield client
    client.close()


@pytest.fixture
def home_assistant(tmp_path: Path, broker: PrivateMosquitto) -> Iterator[HomeAssistant]:
    instance = HomeAssistant(tmp_path, broker.port)
    instance.provision()
    instance.start(ha_venv())
    yield instance
    instance.stop()
    log = instance.log.read_text()
    assert "No module named" not in log  # nothing was left to install
    assert "Erroneous JSON" not in log and "Template variable error" not in log


def _slug(device_id: str) -> str:
    return device_id.replace("-", "_")


def _state(ha: HomeAssistant, entity: str, predicate: Any = bool) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = ha.states().get(entity)
        return found if found is not None and predicate(found) else None

    state: dict[str, Any] = wait_for(
        probe,
        timeout=120,  # a ceiling for a loaded machine, not an expectation
        interval=0.5,
        what=f"{entity} in Home Assistant",
    )
    return state


def _template(ha: HomeAssistant, text: str) -> str:
    """Render a template in Home Assistant (/api/template answers text, not JSON)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{ha.port}/api/template",
        data=json.dumps({"template": text}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {ha.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


def test_home_assistant_shows_the_device_its_services_and_retries_through_the_button(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    home_assistant: HomeAssistant,
    ha_probe: MqttProbe,
    device_id: str,
) -> None:
    ha, slug, probe = home_assistant, _slug(device_id), ha_probe
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_HA_DISCOVERY="true",
        FLEET_AGENT_BACKOFF_INITIAL="60",  # a retry seen soon is the button's, not the schedule's
        FLEET_AGENT_BACKOFF_MAX="60",
    )
    good = service("good", services.image1, 1, SLEEP)
    probe.publish("target", target(1, good, service("bad", services.missing_image, 2)), retain=True)
    agent.start(target_file=False)

    assert _state(ha, f"sensor.{slug}_good_status", lambda s: s["state"] == "running")
    bad = _state(ha, f"sensor.{slug}_bad_status", lambda s: s["state"] == "error")
    assert "running" in bad["attributes"]["options"] and bad["attributes"]["device_class"] == "enum"
    assert _state(ha, f"binary_sensor.{slug}_bad_problem", lambda s: s["state"] == "on")
    assert ha.states()[f"binary_sensor.{slug}_good_problem"]["state"] != "on"
    first = probe.wait_json("services/bad", lambda s: s["error"] and s["error"]["nextRetry"])
    retry = _state(ha, f"sensor.{slug}_bad_next_retry", lambda s: s["state"] not in ("unknown",))
    assert retry["attributes"]["device_class"] == "timestamp"
    shown = dt.datetime.fromisoformat(retry["state"])
    wanted = dt.datetime.fromisoformat(first["error"]["nextRetry"].replace("Z", "+00:00"))
    assert abs((shown - wanted).total_seconds()) < 1  # Home Assistant keeps whole seconds
    assert _state(ha, f"sensor.{slug}_bad_restarts", lambda s: s["state"] == "0")
    assert _state(ha, f"binary_sensor.{slug}_converged", lambda s: s["state"] == "off")
    assert _state(ha, f"sensor.{slug}_target_version", lambda s: s["state"] == "1")
    # all of them belong to one device named after ours
    device = _template(ha, f"{{{{ device_attr(device_id('sensor.{slug}_bad_status'), 'name') }}}}")
    assert device == device_id
    entities = _template(
        ha, f"{{{{ device_entities(device_id('sensor.{slug}_good_status')) | count }}}}"
    )
    assert int(entities) == 2 * 5 + 2

    if shots := os.environ.get("FLEET_SCREENSHOT_DIR"):
        device_page_screenshot(ha, slug, Path(shots) / "home-assistant-device.png")

    # Pressing Retry in Home Assistant makes the agent try again long before its 60 s backoff.
    ha.press(f"button.{slug}_bad_retry")
    wait_for(
        lambda: any(json.loads(p) == {"service": "bad"} for t, p, _ in probe.messages
                    if t.endswith("/cmd/retry")),
        timeout=30, what="Home Assistant published cmd/retry",
    )  # fmt: skip
    result = wait_for(lambda: [r for r in probe.all("cmd/result") if r["command"] == "retry"])
    assert result[0]["ok"] and result[0]["services"] == ["bad"]
    t0 = first["error"]["timestamp"]
    again = probe.wait_json("services/bad", lambda s: s["error"] and s["error"]["timestamp"] > t0)
    assert again["error"]["timestamp"] < first["error"]["nextRetry"]

    # Home Assistant's birth message makes the agent announce itself again.
    announced = len([m for m in probe.messages if m[0].endswith(f"fleet-agent-{device_id}/config")])
    probe.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(10)
    wait_for(
        lambda: len([m for m in probe.messages if m[0].endswith(f"fleet-agent-{device_id}/config")])
        > announced,
        timeout=20, what="config announced again",
    )  # fmt: skip

    # A service that leaves the target takes its entities with it.
    probe.publish("target", target(2, good), retain=True)
    wait_for(
        lambda: not any(e.startswith(f"sensor.{slug}_bad_") for e in ha.states()),
        timeout=60, interval=0.5, what="bad's entities removed",
    )  # fmt: skip
    states = ha.states()
    assert not any(e.endswith(f"{slug}_bad_problem") or e.endswith(f"{slug}_bad_retry")
                   for e in states)  # fmt: skip
    assert states[f"sensor.{slug}_good_status"]["state"] == "running"
    assert _state(ha, f"sensor.{slug}_target_version", lambda s: s["state"] == "2")
    assert _state(ha, f"binary_sensor.{slug}_converged", lambda s: s["state"] == "on")


def device_page_screenshot(ha: HomeAssistant, slug: str, path: Path) -> None:
    """The device's page in Home Assistant's own frontend, in headless Chromium (for docs)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    device = _template(ha, f"{{{{ device_id('sensor.{slug}_bad_status') }}}}")
    tokens = json.dumps({
        "access_token": ha.token, "token_type": "Bearer", "expires_in": 31536000,
        "hassUrl": f"http://127.0.0.1:{ha.port}", "clientId": f"http://127.0.0.1:{ha.port}/",
        "expires": 4102444800000, "refresh_token": "",
    })  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.add_init_script(f"window.localStorage.setItem('hassTokens', {tokens!r});")
            page.goto(f"http://127.0.0.1:{ha.port}/config/devices/device/{device}")
            page.wait_for_timeout(8000)  # the frontend renders its cards (docs only, not checked)
            page.screenshot(path=str(path))
        finally:
            browser.close()
