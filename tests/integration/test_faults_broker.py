"""The broker killed and restarted; the broker frozen (SIGSTOP) past the keepalive, then resumed:
the agent notices within 1.5x the keepalive, its memory stays bounded, containers keep running."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import docker

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for
from tests.integration.invariants import World
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]
KEEPALIVE = 6


def _two_services(version: int, image: str) -> dict[str, Any]:
    return target(version, service("a", image, 1, SLEEP), service("b", image, 2, SLEEP))


def _publish(port: int, device_id: str, doc: dict[str, Any]) -> None:
    probe = MqttProbe("127.0.0.1", port, device_id)
    try:
        probe.publish("target", doc, retain=True)
    finally:
        probe.close()


def _containers(api: docker.APIClient, device_id: str) -> dict[str, tuple[str, str]]:
    return {
        name: (rows[0]["Id"], api.inspect_container(rows[0]["Id"])["State"]["StartedAt"])
        for name, rows in by_service(api, device_id).items()
    }


def _rss_kib(agent: AgentProcess) -> int:
    assert agent.proc is not None
    for line in open(f"/proc/{agent.proc.pid}/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _disconnected_after(agent: AgentProcess, moment: float) -> float | None:
    """Seconds from `moment` to the first 'MQTT disconnected' the agent logged after it."""
    for line in agent.log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") != "MQTT disconnected":
            continue
        at = dt.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
        if at >= moment:
            return at - moment
    return None


def test_a_broker_killed_and_restarted_leaves_every_invariant_holding(
    world: World, broker: PrivateMosquitto, services: Services, device_id: str
) -> None:
    world.add_bystander(services.image1)
    _publish(broker.port, device_id, _two_services(1, services.image1))
    world.agent.start(target_file=False)
    world.settle(1, {"a", "b"})
    before = _containers(world.api, device_id)

    broker.kill()  # no persistence: the retained target is gone with it
    broker.start()
    world.settle(1, {"a", "b"})  # the agent kept its target and republished everything
    assert _containers(world.api, device_id) == before
    _publish(broker.port, device_id, _two_services(2, services.image2))
    world.settle(2, {"a", "b"})


def test_a_frozen_broker_is_noticed_within_one_and_a_half_keepalives_and_costs_nothing(
    world: World, broker: PrivateMosquitto, services: Services, device_id: str
) -> None:
    world.agent.env["FLEET_AGENT_MQTT_KEEPALIVE"] = str(KEEPALIVE)
    world.add_bystander(services.image1)
    _publish(broker.port, device_id, _two_services(1, services.image1))
    world.agent.start(target_file=False)
    world.settle(1, {"a", "b"})
    before, rss_before = _containers(world.api, device_id), _rss_kib(world.agent)

    frozen_at = time.time()
    broker.freeze()
    try:
        noticed = wait_for(
            lambda: _disconnected_after(world.agent, frozen_at),
            timeout=KEEPALIVE * 4,
            what="the agent noticing the frozen broker",
        )
        time.sleep(KEEPALIVE)  # frozen well past the keepalive, reconnects failing meanwhile
        rss_frozen = _rss_kib(world.agent)
    finally:
        broker.thaw()
    print(f"frozen broker noticed after {noticed:.1f}s (keepalive {KEEPALIVE}s)")
    assert noticed <= 1.5 * KEEPALIVE
    assert rss_frozen - rss_before < 32 * 1024, (rss_before, rss_frozen)
    world.settle(1, {"a", "b"})
    assert _containers(world.api, device_id) == before  # kept running throughout
