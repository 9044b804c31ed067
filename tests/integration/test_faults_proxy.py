"""A TCP proxy between agent and broker delays, drops and resets traffic; a target published
during each fault is applied after it, and every invariant holds once settled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import service, target
from tests.integration.invariants import World
from tests.integration.mqtt_probe import MqttProbe
from tests.integration.tcp_proxy import TcpProxy

SLEEP = ["sh", "-c", "exec sleep 3600"]
KEEPALIVE = 4


@pytest.fixture
def proxy(broker: PrivateMosquitto) -> Iterator[TcpProxy]:
    instance = TcpProxy(broker.port)
    yield instance
    instance.close()


def test_a_target_published_while_the_link_delays_drops_or_resets_is_applied_after_it(
    world: World, proxy: TcpProxy, services: Services, device_id: str
) -> None:
    world.agent.env.update(
        FLEET_AGENT_MQTT_URL=proxy.url, FLEET_AGENT_MQTT_KEEPALIVE=str(KEEPALIVE)
    )

    def version(n: int) -> dict[str, Any]:
        image = services.image1 if n % 2 else services.image2
        return target(
            n, service("app", image, 1, SLEEP), service("side", services.image1, 2, SLEEP)
        )

    probe = MqttProbe("127.0.0.1", world.broker_port, device_id)  # the cloud: no proxy
    try:
        world.add_bystander(services.image1)
        probe.publish("target", version(1), retain=True)
        world.agent.start(target_file=False)
        world.settle(1, {"app", "side"})

        proxy.set_mode("delay", 0.3)
        probe.publish("target", version(2), retain=True)
        world.settle(2, {"app", "side"})  # slow, but it gets through

        for n, fault in ((3, "drop"), (4, "reset")):
            proxy.set_mode(fault)
            probe.publish("target", version(n), retain=True)
            time.sleep(1.5 * KEEPALIVE + 1)  # long enough for the agent to notice
            proxy.set_mode("pass")
            world.settle(n, {"app", "side"})
    finally:
        probe.close()
