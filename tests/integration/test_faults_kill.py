"""The agent SIGKILLed at 20 random moments of busy reconciles (pulls, creations, removals) and
restarted each time. The moments and targets come from a seed, printed, and taken from
FLEET_TEST_SEED when set, so a failure can be replayed."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any

import docker

from tests.integration.conftest import Services
from tests.integration.helpers import by_service, service, target
from tests.integration.invariants import World
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]
NAMES = ("a", "b", "c", "d")
KILLS = 20


def _random_target(rng: random.Random, version: int, services: Services) -> dict[str, Any]:
    chosen = sorted(rng.sample(NAMES, rng.randint(1, len(NAMES))))
    return target(
        version,
        *(
            service(
                name,
                rng.choice([services.image1, services.image2]),
                NAMES.index(name) + 1,
                SLEEP,
                environment={"V": str(rng.randint(0, 3))},
            )
            for name in chosen
        ),
    )


def test_an_agent_killed_at_20_random_moments_of_busy_reconciles_ends_consistent(
    world: World, services: Services, api: docker.APIClient, device_id: str
) -> None:
    seed = int(os.environ.get("FLEET_TEST_SEED", random.randrange(2**32)))
    print(f"FLEET_TEST_SEED={seed}")
    rng = random.Random(seed)
    probe = MqttProbe("127.0.0.1", world.broker_port, device_id)
    doc: dict[str, Any] = {}
    try:
        world.add_bystander(services.image1)
        world.agent.start(target_file=False)
        for version in range(1, KILLS + 1):
            if rng.random() < 0.5:  # the next pass has to pull again
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_image(rng.choice([services.image1, services.image2]), force=True)
            doc = _random_target(rng, version, services)
            probe.publish("target", doc, retain=True)
            rng_wait = rng.uniform(0.05, 2.0)
            world.agent.wait_quietly(rng_wait)
            world.agent.kill()
            crowded = {n: len(rows) for n, rows in by_service(api, device_id).items()}
            assert all(count == 1 for count in crowded.values()), (seed, version, crowded)
            world.agent.start(target_file=False)
        names = {s["serviceName"] for app in doc["apps"].values() for s in app["services"]}
        world.settle(KILLS, names, timeout=120)
    finally:
        probe.close()
