"""Floods: 500 target versions in one second, a 1,000-service target replaced. Afterwards every
retained topic matches reality (the publisher lost no latest value, acks included)."""

from __future__ import annotations

import json
import time
from typing import Any

import docker

from tests.integration.conftest import Services
from tests.integration.helpers import service, target, wait_for
from tests.integration.invariants import World, retained_topics
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


def _creations(api: docker.APIClient, device_id: str, since: float) -> list[dict[str, Any]]:
    events = api.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={
            "type": "container",
            "event": "create",
            "label": f"io.fleet-agent.device={device_id}",
        },
    )
    return list(events)


def test_500_target_versions_in_one_second_end_on_the_last_with_almost_no_containers_between(
    world: World, services: Services, api: docker.APIClient, device_id: str
) -> None:
    others = [service(f"side{k}", services.image1, k + 2, SLEEP) for k in range(9)]
    names = {"app"} | {f"side{k}" for k in range(9)}

    def version(n: int) -> dict[str, Any]:
        changed = service("app", services.image1, 1, SLEEP, environment={"V": str(n)})
        return target(n, changed, *others)

    probe = MqttProbe("127.0.0.1", world.broker_port, device_id)
    try:
        world.add_bystander(services.image1)
        probe.publish("target", version(1), retain=True)
        world.agent.start(target_file=False)
        world.settle(1, names)
        since = time.time() - 1
        infos = [
            probe.client.publish(f"{probe.base}/target", json.dumps(version(n)), qos=1, retain=True)
            for n in range(2, 502)
        ]
        for info in infos:
            info.wait_for_publish(10)
        world.settle(501, names)
    finally:
        probe.close()
    [row] = world.api.containers(
        filters={"label": [f"io.fleet-agent.device={device_id}", "io.fleet-agent.service=app"]}
    )
    assert "V=501" in api.inspect_container(row["Id"])["Config"]["Env"]
    created = _creations(api, device_id, since)
    assert len(created) <= 25, f"{len(created)} containers created for 500 versions"


def test_a_1000_service_target_replaced_clears_every_retained_topic_of_the_removed_services(
    world: World, services: Services, device_id: str
) -> None:
    names = [f"s{n:04d}" for n in range(1000)]
    big = target(1, *(service(name, services.missing_image, n + 1) for n, name in enumerate(names)))
    world.agent.env.update(
        FLEET_AGENT_MAX_SERVICES="1000",  # the cap on services per target (default lower)
        FLEET_AGENT_MAX_RETRIES="1",  # one failed pull each, then ErrImagePull: alert, history
        FLEET_AGENT_PULL_CONCURRENCY="8",
    )
    probe = MqttProbe("127.0.0.1", world.broker_port, device_id)
    try:
        probe.publish("target", big, retain=True)
        world.agent.start(target_file=False)

        def every_service_failed() -> bool:
            retained = retained_topics(world.broker_port, world.base)
            failed = {
                name
                for name in names
                if (s := json.loads(retained.get(f"services/{name}", b"null")))
                and s["error"]
                and f"alerts/{name}" in retained
                and f"history/{name}" in retained
            }
            return failed == set(names)

        wait_for(every_service_failed, timeout=240, interval=2, what="1000 services failed")
        probe.publish("target", target(2, service("keep", services.image1, 1, SLEEP)), retain=True)
        world.settle(2, {"keep"}, timeout=120)
    finally:
        probe.close()
