"""Outages: a stalled or failing registry, the engine stopped and started, the agent killed
during a pull or a container creation."""

from __future__ import annotations

import subprocess
from typing import Any

import docker
import pytest

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.fake_registries import FailingRegistry, StalledRegistry, ThrottledRegistry
from tests.integration.helpers import REPO, AgentProcess, by_service, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]
PRIVATE_ENGINE = "unix:///run/fleet-test/docker.sock"


def _states(agent: AgentProcess) -> dict[str, str]:
    status = agent.status() or {}
    return {name: s["serviceStatus"] for name, s in status.get("services", {}).items()}


def test_a_stalled_or_failing_registry_delays_only_the_service_that_uses_it(
    agent: AgentProcess, services: Services
) -> None:
    agent.env["FLEET_AGENT_PULL_TIMEOUT"] = "3"
    with StalledRegistry() as stalled, FailingRegistry() as failing:
        agent.set_target(
            target(
                1,
                service("good", services.image1, 1, SLEEP),
                service("stalled", f"127.0.0.1:{stalled.port}/fleet/app:1", 2, SLEEP),
                service("failing", f"127.0.0.1:{failing.port}/fleet/app:1", 3, SLEEP),
            )
        )
        agent.start()
        # `good` runs while `stalled` waits on its registry (a stall that timed out meanwhile
        # on a slow machine is pulled again, so this is seen however late `good` runs)
        wait_for(
            lambda: (
                (st := _states(agent)).get("good") == "running"
                and st.get("stalled") == "downloading"
            ),
            timeout=120,
            what="good running while stalled downloads",
        )
        failed = agent.wait_service("failing", lambda s: s["error"])
        assert failed["error"]["type"] == "ImagePullBackOff"
        assert "500" in failed["error"]["message"]
        timed_out = agent.wait_service("stalled", lambda s: s["error"], timeout=40)
        assert timed_out["error"]["type"] == "ImagePullBackOff"
        # FLEET_AGENT_PULL_TIMEOUT bounds every read, before the engine's own ~25 s timeout
        assert timed_out["error"]["message"] == "pull stalled: no progress for 3s"
        good = agent.service("good")
        assert good is not None and good["serviceStatus"] == "running" and good["error"] is None


def _testenv(*args: str) -> None:
    subprocess.run([str(REPO / "scripts" / "testenv.sh"), *args], check=True, capture_output=True)


def test_an_engine_stopped_and_started_under_a_running_agent_costs_no_retry_budget(
    agent: AgentProcess, broker: PrivateMosquitto, services: Services, device_id: str
) -> None:
    if services.docker_host != PRIVATE_ENGINE:
        pytest.skip("the engine is a reused one; only the project's private engine is stopped")
    agent.env["FLEET_AGENT_MQTT_URL"] = broker.url
    agent.set_target(
        target(
            1,
            service("always", services.image1, 1, SLEEP, restart="always"),
            service("polite", services.image1, 2, SLEEP, restart="unless-stopped"),
        )
    )
    probe = MqttProbe("127.0.0.1", broker.port, device_id)
    try:
        agent.start()
        probe.wait_json("state", lambda s: s["converged"] and s["targetVersion"] == 1)
        try:
            _testenv("engine-stop")
            alert = probe.wait_json("alerts/_agent", lambda a: a["type"] == "EngineUnavailable")
            assert alert["severity"] == "critical"
            assert probe.json("state")["converged"] is False
        finally:
            _testenv("engine-start")
        wait_for(lambda: probe.raw("alerts/_agent") == b"", timeout=60, what="alert cleared")
        state = probe.wait_json("state", lambda s: s["converged"], timeout=60)
        assert state["counts"] == {"running": 2}
        for name in ("always", "polite"):
            history = probe.all(f"services/{name}")
            assert all(s["error"] is None for s in history), (name, history)
            assert probe.json(f"services/{name}")["serviceStatus"] == "running"
    finally:
        probe.close()


def _ids_and_starts(api: docker.APIClient, device_id: str) -> dict[str, tuple[str, str]]:
    result: dict[str, tuple[str, str]] = {}
    for name, rows in by_service(api, device_id).items():
        assert len(rows) == 1, (name, rows)
        inspect: dict[str, Any] = api.inspect_container(rows[0]["Id"])
        result[name] = (rows[0]["Id"], inspect["State"]["StartedAt"])
    return result


@pytest.mark.parametrize("moment", ["during a pull", "during a container creation"])
def test_an_agent_killed_during_a_pull_or_creation_adopts_without_restarting_healthy_ones(
    agent: AgentProcess,
    services: Services,
    api: docker.APIClient,
    device_id: str,
    fresh_images: None,
    moment: str,
) -> None:
    healthy = service("healthy", services.image1, 1, SLEEP)
    agent.set_target(target(1, healthy))
    agent.start()
    wait_for(lambda: _states(agent).get("healthy") == "running", what="healthy running")
    before = _ids_and_starts(api, device_id)

    # through a slow proxy the pull lasts seconds, so the kill comes while it is under way
    # (a quick pull could end between two looks at the status on a busy machine)
    with ThrottledRegistry(services.registry, rate=1 << 18) as slow:
        added = services.image2.replace(services.registry, f"127.0.0.1:{slow.port}")
        agent.set_target(target(2, healthy, service("added", added, 2, SLEEP)))
        if moment == "during a pull":
            wait_for(lambda: _states(agent).get("added") == "downloading", interval=0.002)
        else:
            wait_for(lambda: "added" in by_service(api, device_id), interval=0.002, timeout=120)
        agent.kill()

        agent.start()
        wait_for(
            lambda: (
                (s := agent.status())
                and s["state"]["converged"]
                and s["state"]["targetVersion"] == 2
            ),
            timeout=120,
            what="converged after restart",
        )
    after = _ids_and_starts(api, device_id)
    assert after["healthy"] == before["healthy"]  # adopted, not restarted
    assert set(after) == {"healthy", "added"}
    assert api.inspect_container(after["added"][0])["State"]["Running"] is True


def test_a_config_replaced_during_a_stalled_pull_runs_and_a_stop_during_one_ends_cleanly(
    agent: AgentProcess, services: Services
) -> None:
    """With the only pull slot stalled, the new config still gets pulled and runs. (The engine
    gives up on a silent registry by itself after ~25 s, so this passes without the cancel
    too; tests/unit/test_reconciler.py proves the cancel with a pull that never ends.)"""
    # one pull at a time, and a stall our own deadline would end only after 5 minutes
    agent.env.update(FLEET_AGENT_PULL_CONCURRENCY="1", FLEET_AGENT_PULL_TIMEOUT="300")
    with StalledRegistry() as stalled:
        stuck = f"127.0.0.1:{stalled.port}/fleet/app:1"
        agent.set_target(target(1, service("app", stuck, 1, SLEEP)))
        agent.start()
        agent.wait_service("app", lambda s: s["serviceStatus"] == "downloading", timeout=120)

        agent.set_target(target(2, service("app", services.image1, 1, SLEEP)))

        running = agent.wait_service(
            "app",
            lambda s: s["serviceStatus"] == "running" and s["targetVersion"] == 2,
            timeout=120,
        )
        assert running["error"] is None
        # and a shutdown while a pull stalls ends cleanly (stop() allows it 30 s, not 300)
        agent.set_target(target(3, service("app", stuck, 1, SLEEP), service("b", stuck, 2, SLEEP)))
        agent.wait_service("b", lambda s: s["serviceStatus"] == "downloading", timeout=120)
        assert agent.stop() == 0
