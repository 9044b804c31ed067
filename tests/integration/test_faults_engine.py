"""The engine stopped and started again in the middle of a pass that replaces containers."""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Any

import docker
import pytest

from tests.integration.conftest import Services
from tests.integration.helpers import REPO, by_service, service, target, wait_for
from tests.integration.invariants import World
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]
NAMES = ("a", "b", "c", "d")


def _private_engine() -> str:
    root = os.environ.get("FLEET_TEST_ROOT")
    return f"unix://{root}/run/docker.sock" if root else "unix:///run/fleet-test/docker.sock"


def _testenv(*args: str) -> None:
    subprocess.run([str(REPO / "scripts" / "testenv.sh"), *args], check=True, capture_output=True)


def _all(version: int, image: str) -> dict[str, Any]:
    return target(version, *(service(n, image, i + 1, SLEEP) for i, n in enumerate(NAMES)))


def test_the_engine_stopped_and_started_in_the_middle_of_replacing_containers(
    world: World, services: Services, api: docker.APIClient, device_id: str
) -> None:
    if services.docker_host != _private_engine():
        pytest.skip("the engine is a reused one; only the project's private engine is stopped")
    # No bystander here: an engine restart stops every container, ours or not.
    probe = MqttProbe("127.0.0.1", world.broker_port, device_id)
    try:
        probe.publish("target", _all(1, services.image1), retain=True)
        world.agent.start(target_file=False)
        world.settle(1, set(NAMES))
        before = {name: rows[0]["Id"] for name, rows in by_service(api, device_id).items()}
        with contextlib.suppress(docker.errors.APIError):
            api.pull(services.image2)  # present: the replacing pass starts at once

        probe.publish("target", _all(2, services.image2), retain=True)

        def replacing() -> bool:
            now = {name: rows[0]["Id"] for name, rows in by_service(api, device_id).items()}
            return now != before

        wait_for(replacing, timeout=30, interval=0.005, what="a container being replaced")
        try:
            _testenv("engine-stop")
        finally:
            _testenv("engine-start")
        world.settle(2, set(NAMES), timeout=120)
    finally:
        probe.close()
