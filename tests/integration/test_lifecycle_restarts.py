"""Agent-owned restarts: CrashLoopBackOff with its backoff, resets, policies, stops by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import docker
import pytest

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]
CRASH = ["sh", "-c", "echo starting up; echo giving up >&2; exit 3"]


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _container(api: docker.APIClient, device_id: str, name: str) -> dict[str, Any]:
    rows = by_service(api, device_id)[name]
    assert len(rows) == 1
    inspect: dict[str, Any] = api.inspect_container(rows[0]["Id"])
    return inspect


def test_a_container_exiting_with_code_3_under_always_crash_loops_then_exhausts_then_resets(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    agent.env.update(FLEET_AGENT_MQTT_URL=broker.url, FLEET_AGENT_MAX_RETRIES="4")
    probe.publish(
        "target",
        target(1, service("crash", services.image1, 1, CRASH, restart="always")),
        retain=True,
    )
    agent.start(target_file=False)

    seen: dict[int, dict[str, Any]] = {}

    def exhausted() -> bool:
        status = probe.json("services/crash")
        if status and status["error"]:
            seen.setdefault(status["error"]["retryCount"], status)
        return bool(status and status["error"] and status["error"]["exhausted"])

    wait_for(exhausted, timeout=40, interval=0.05, what="crash loop exhausted")
    first = seen[1]
    error = first["error"]
    assert first["serviceStatus"] == "error" and error["type"] == "CrashLoopBackOff"
    assert "exited with code 3" in error["message"] and "giving up" in error["message"]
    assert first["exitCode"] == 3
    # restarts follow the compressed schedule 1, 2, 4 s after each exit
    for count in (1, 2, 3):
        now, later = seen[count]["error"], seen[count + 1]["error"]
        assert _ts(now["nextRetry"]) - _ts(now["timestamp"]) == min(2 ** (count - 1), 4)
        assert _ts(later["timestamp"]) > _ts(now["nextRetry"])
    assert [seen[n]["restartCount"] for n in (1, 2, 3, 4)] == [0, 1, 2, 3]
    final = probe.json("services/crash")
    assert final["error"]["nextRetry"] is None and final["restartCount"] == 3
    alert = probe.wait_json("alerts/crash", lambda a: a["severity"] == "critical")
    assert alert["type"] == "MaxRetriesExceeded"
    assert _container(api, device_id, "crash")["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")

    probe.publish(
        "target",
        target(2, service("crash", services.image1, 1, SLEEP, restart="always")),
        retain=True,
    )
    healed = probe.wait_json(
        "services/crash", lambda s: s["serviceStatus"] == "running" and s["targetVersion"] == 2
    )
    assert healed["error"] is None and healed["restartCount"] == 0
    wait_for(lambda: probe.raw("alerts/crash") == b"", what="alert cleared")


def test_the_crash_backoff_resets_after_healthy_running(
    agent: AgentProcess, services: Services
) -> None:
    agent.env.update(FLEET_AGENT_CRASH_RESET_AFTER="1.5", FLEET_AGENT_BACKOFF_INITIAL="0.5")
    slow_crash = ["sh", "-c", "sleep 2; exit 3"]
    agent.set_target(target(1, service("slow", services.image1, 1, slow_crash, restart="always")))
    agent.start()
    counts: set[int] = set()

    def restarted_three_times() -> bool:
        status = agent.service("slow")
        if status and status["error"]:
            counts.add(status["error"]["retryCount"])
        return bool(status and status["restartCount"] >= 3)

    wait_for(restarted_three_times, timeout=40, interval=0.05, what="three restarts")
    assert counts == {1}  # every exit came after healthy running: never a growing backoff


@pytest.mark.parametrize(
    ("policy", "command", "code"),
    [("on-failure", ["sh", "-c", "exit 0"], 0), ("no", ["sh", "-c", "exit 3"], 3)],
)
def test_a_container_that_is_not_to_be_restarted_ends_exited_with_its_code(
    agent: AgentProcess,
    services: Services,
    api: docker.APIClient,
    device_id: str,
    policy: str,
    command: list[str],
    code: int,
) -> None:
    agent.set_target(target(1, service("job", services.image1, 1, command, restart=policy)))
    agent.start()
    status = wait_for(lambda: (s := agent.service("job")) and s["serviceStatus"] == "exited" and s)
    assert status["exitCode"] == code and status["error"] is None and status["restartCount"] == 0
    started = _container(api, device_id, "job")["State"]["StartedAt"]
    agent.set_target(target(2, service("job", services.image1, 1, command, restart=policy)))
    wait_for(lambda: (s := agent.service("job")) and s["targetVersion"] == 2)
    wait_for(lambda: (s := agent.status()) and s["state"]["targetVersion"] == 2)
    assert _container(api, device_id, "job")["State"]["StartedAt"] == started
    assert agent.service("job")["restartCount"] == 0  # type: ignore[index]


def _trio(version: int, image: str) -> dict[str, Any]:
    return target(
        version,
        service("polite", image, 1, SLEEP, restart="unless-stopped"),
        service("killed", image, 2, SLEEP, restart="unless-stopped"),
        service("stubborn", image, 3, SLEEP, restart="always"),
    )


def test_a_container_stopped_by_hand_stays_stopped_under_unless_stopped_but_not_under_always(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    agent.set_target(_trio(1, services.image1))
    agent.start()
    wait_for(lambda: (s := agent.status()) and s["state"]["converged"], what="all running")
    stubborn = _container(api, device_id, "stubborn")

    api.stop(_container(api, device_id, "polite")["Id"], timeout=1)
    api.kill(_container(api, device_id, "killed")["Id"])  # a kill sends no `stop` event
    api.stop(stubborn["Id"], timeout=1)
    for name in ("polite", "killed"):
        stopped = agent.wait_service(name, lambda s: s["serviceStatus"] == "stopped")
        assert stopped["error"] is None, name
    back = agent.wait_service(
        "stubborn",
        lambda s: (
            s["serviceStatus"] == "running"
            and _container(api, device_id, "stubborn")["State"]["StartedAt"]
            != stubborn["State"]["StartedAt"]
        ),
    )
    assert back["containerId"] == stubborn["Id"] and back["error"] is None

    # They stay stopped through later passes and an agent restart.
    agent.stop()
    agent.start()
    agent.wait_service("stubborn", lambda s: s["serviceStatus"] == "running")
    agent.set_target(_trio(2, services.image1))
    wait_for(lambda: (s := agent.status()) and s["state"]["targetVersion"] == 2)
    for name in ("polite", "killed"):
        assert _container(api, device_id, name)["State"]["Running"] is False
        assert (
            agent.wait_service(name, lambda s: s["targetVersion"] == 2)["serviceStatus"]
            == "stopped"
        )
