"""No service waits on another, stops by hand under on-failure, and an agent that remembers."""

from __future__ import annotations

import json
from typing import Any

import docker

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]
STUBBORN = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]  # ignores SIGTERM
CRASH = ["sh", "-c", "echo giving up >&2; exit 3"]


def _statuses(probe: MqttProbe, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """(service, status) of every status message from `start` on, in the order they came."""
    prefix = f"{probe.base}/services/"
    with probe._lock:
        messages = probe.messages[start:]

    return [
        (t.removeprefix(prefix), json.loads(p))
        for t, p, _ in messages
        if t.startswith(prefix) and p
    ]


def test_a_new_service_runs_and_is_reported_while_another_takes_its_whole_stop_grace(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    agent.env.update(FLEET_AGENT_MQTT_URL=broker.url, FLEET_AGENT_STOP_TIMEOUT="10")
    first = service("stubborn", services.image1, 1, STUBBORN, restart="always")
    probe.publish("target", target(1, first), retain=True)
    agent.start(target_file=False)
    old = probe.wait_json(
        "services/stubborn", lambda s: s["serviceStatus"] == "running", timeout=120
    )
    mark = len(probe.messages)

    # stubborn's config changes (its container must be stopped: 10 s, it ignores SIGTERM),
    # and a new service comes in the same target, listed after it
    changed = service(
        "stubborn", services.image1, 1, STUBBORN, restart="always", environment={"V": "2"}
    )
    fresh = service("fresh", services.image1, 2, SLEEP, restart="always")
    probe.publish("target", target(2, changed, fresh), retain=True)
    replaced = wait_for(
        lambda: next(
            (
                i
                for i, (name, s) in enumerate(_statuses(probe, mark))
                if name == "stubborn" and s["containerId"] not in (None, old["containerId"])
            ),
            None,
        ),
        timeout=120,
        what="stubborn replaced",
    )

    seen = _statuses(probe, mark)
    fresh_running = next(
        i for i, (name, s) in enumerate(seen) if name == "fresh" and s["serviceStatus"] == "running"
    )
    stopping = [
        i
        for i, (name, s) in enumerate(seen)
        if name == "stubborn" and s["serviceStatus"] == "stopping"
    ]
    assert fresh_running < replaced  # reported running while stubborn's stop was under way
    assert stopping and stopping[0] < replaced
    assert by_service(api, device_id)["fresh"][0]["State"] == "running"


def test_docker_stop_under_on_failure_is_a_stop_by_hand_not_a_failure(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    agent.set_target(target(1, service("worker", services.image1, 1, SLEEP, restart="on-failure")))
    agent.start()
    running = agent.wait_service("worker", lambda s: s["serviceStatus"] == "running", timeout=120)

    api.stop(running["containerId"], timeout=1)  # sleep as PID 1 ignores SIGTERM: killed, 137

    stopped = agent.wait_service("worker", lambda s: s["serviceStatus"] == "stopped", timeout=120)
    assert (stopped["exitCode"], stopped["restartCount"], stopped["error"]) == (137, 0, None)
    agent.set_target(target(2, service("worker", services.image1, 1, SLEEP, restart="on-failure")))
    later = agent.wait_service("worker", lambda s: s["targetVersion"] == 2, timeout=120)
    assert later["serviceStatus"] == "stopped" and later["restartCount"] == 0
    assert api.inspect_container(running["containerId"])["State"]["Running"] is False


def test_an_agent_restarted_mid_crash_loop_keeps_restart_count_history_and_alert(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
) -> None:
    agent.env.update(FLEET_AGENT_MQTT_URL=broker.url, FLEET_AGENT_BACKOFF_MAX="2")
    probe.publish(
        "target",
        target(1, service("crash", services.image1, 1, CRASH, restart="always")),
        retain=True,
    )
    agent.start(target_file=False)
    probe.wait_json("services/crash", lambda s: s["restartCount"] >= 2, timeout=120)
    assert agent.stop() == 0  # SIGTERM, mid crash loop
    before = probe.json("services/crash")
    history = probe.json("history/crash")
    alert = probe.json("alerts/crash")
    mark = len(probe.messages)

    agent.start(target_file=False)

    first = wait_for(
        lambda: next((s for n, s in _statuses(probe, mark) if n == "crash"), None), timeout=120
    )
    # remembered, not started over; the container may have crashed again while the agent was
    # down, and the new agent's first pass restarting it may end before its first status goes
    # out (how quickly is the machine's business): then it already counts that restart
    assert before["restartCount"] >= 2
    assert before["restartCount"] <= first["restartCount"] <= before["restartCount"] + 1
    after = probe.wait_json("history/crash", lambda h: len(h) >= len(history), timeout=120)
    assert after[: len(history)] == history  # the retained history keeps its old entries
    assert alert is not None and probe.json("alerts/crash")["raisedAt"] == alert["raisedAt"]
    # and the loop goes on counting from there
    probe.wait_json(
        "services/crash", lambda s: s["restartCount"] > before["restartCount"], timeout=120
    )
