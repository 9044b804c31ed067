"""One target change costs one message per retained topic, and nothing for services it left alone.

Real agent process, real Mosquitto, real engine. Every status carries `targetVersion` (the
contract), so each service's status is sent once per version; history, alerts and events are
sent only for the services the version changed. The hold a report with steps under way waits
for the next pass (FLEET_AGENT_PUBLISH_HOLD) is raised, so that a loaded machine, on which a
replacement takes longer than the default second, does not turn the counts into a timing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
NAMES = [f"s{i}" for i in range(8)]
CHANGED = {"s0", "s1"}


def _target(version: int, image: str, changed: set[str]) -> dict[str, Any]:
    def command(name: str) -> list[str]:
        return [*LOOP[:-1], f"{LOOP[-1]} # v{version}"] if name in changed else LOOP

    return target(version, *(service(n, image, i + 1, command(n)) for i, n in enumerate(NAMES)))


def _quiet(probe: MqttProbe, seconds: float = 2.0) -> int:
    """Wait until nothing arrived for `seconds`; how many messages had arrived by then."""
    seen, since = len(probe.messages), time.monotonic()
    deadline = since + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if len(probe.messages) != seen:
            seen, since = len(probe.messages), time.monotonic()
        elif time.monotonic() - since >= seconds:
            return seen
    raise AssertionError("the agent never went quiet")


def _converged(probe: MqttProbe, version: int) -> None:
    probe.wait_json(
        "state", lambda s: s["targetVersion"] == version and s["converged"], timeout=180
    )


def test_a_target_change_sends_each_retained_topic_once_and_nothing_for_unchanged_services(
    agent: AgentProcess, broker: PrivateMosquitto, probe: MqttProbe, services: Services
) -> None:
    agent.env.update(FLEET_AGENT_MQTT_URL=broker.url, FLEET_AGENT_PUBLISH_HOLD="60")
    agent.start(target_file=False)
    wait_for(lambda: probe.raw("availability") == b"online", what="online")
    probe.publish("target", _target(1, services.image1, set()), retain=True)
    _converged(probe, 1)
    before = _quiet(probe)

    probe.publish("target", _target(2, services.image1, CHANGED), retain=True)
    _converged(probe, 2)
    after = _quiet(probe)

    base = f"{probe.base}/"
    caused = [(t.removeprefix(base), p) for t, p, _ in probe.messages[before:after]]
    retained = Counter(t for t, _ in caused if t not in ("events", "target"))
    expected = {f"services/{n}": 1 for n in NAMES} | {f"history/{n}": 1 for n in CHANGED}
    assert dict(retained) == expected | {"state": 1, "target/ack": 1}
    events = [json.loads(p) for t, p in caused if t == "events"]
    assert events and {e["service"] for e in events} == CHANGED
    statuses = [json.loads(p) for t, p in caused if t.startswith("services/")]
    assert {(s["targetVersion"], s["serviceStatus"]) for s in statuses} == {(2, "running")}
