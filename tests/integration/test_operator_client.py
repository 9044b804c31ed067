"""The cloud-side client against a real Mosquitto, engine, registry and agent."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.errors import BrokerUnreachable, InvalidTarget, WaitTimeout
from fleet_agent.operator.fleet import Change, Device
from fleet_agent.operator.wire import ServiceStatus
from tests.integration.brokers import PrivateMosquitto, free_port
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, service, target

SLEEP = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture
def client(broker: PrivateMosquitto) -> Iterator[FleetClient]:
    with FleetClient(Connection(mqtt_url=broker.url), events=True) as fleet_client:
        yield fleet_client


def start_agent(agent: AgentProcess, broker: PrivateMosquitto) -> None:
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_BACKOFF_INITIAL="0.5",
        FLEET_AGENT_BACKOFF_MAX="1",
        FLEET_AGENT_MAX_RETRIES="3",
    )
    agent.start(target_file=False)


def failing(name: str, device_id: str) -> Callable[[dict[str, Device]], ServiceStatus | None]:
    def check(devices: dict[str, Device]) -> ServiceStatus | None:
        device = devices.get(device_id)
        status = device.services.get(name) if device else None
        return status if status is not None and status.error is not None else None

    return check


def converged(device_id: str) -> Callable[[dict[str, Device]], Device | None]:
    def check(devices: dict[str, Device]) -> Device | None:
        device = devices.get(device_id)
        return device if device and device.state and device.state.converged else None

    return check


def running(
    name: str, device_id: str, version: int | None = None
) -> Callable[[dict[str, Device]], bool]:
    def check(devices: dict[str, Device]) -> bool:
        device = devices.get(device_id)
        status = device.services.get(name) if device else None
        if status is None or status.service_status != "running":
            return False
        return version is None or status.target_version == version

    return check


def test_the_client_applies_versioned_targets_and_follows_the_device_to_healthy(
    client: FleetClient,
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    device_id: str,
) -> None:
    seen: list[Change] = []
    client.on_change(seen.append)
    start_agent(agent, broker)
    client.wait_until(lambda d: d.get(device_id) and d[device_id].online, timeout=30)
    good = service("good", services.image1, 1, SLEEP)
    bad = service("bad", services.missing_image, 2)

    ack = client.apply(device_id, target(None, good, bad))
    assert ack.accepted and ack.version == 1  # nothing accepted before: version 1
    client.wait_until(running("good", device_id), timeout=60)
    bad_status = client.wait_until(failing("bad", device_id), timeout=60)
    assert bad_status.error is not None
    assert bad_status.error.type in ("ImagePullBackOff", "ErrImagePull")
    client.wait_until(lambda d: "bad" in d[device_id].alerts, timeout=30)
    assert client.device(device_id).in_error  # type: ignore[union-attr]

    fixed = service("bad", services.image2, 2, SLEEP)
    ack = client.apply(device_id, target(None, good, fixed))
    assert ack.accepted and ack.version == 2  # last accepted + 1
    client.wait_until(running("bad", device_id, 2), timeout=60)
    client.wait_until(lambda d: "bad" not in d[device_id].alerts, timeout=30)
    device = client.wait_until(converged(device_id))
    assert not device.in_error
    client.wait_until(lambda d: d[device_id].history["bad"][-1].service_status == "running")
    assert any(h.error_type for h in client.devices()[device_id].history["bad"])
    kinds = {c.kind for c in seen if c.device_id == device_id}
    assert {"availability", "ack", "services", "alerts", "history", "state", "events"} <= kinds


def test_a_late_client_reads_the_whole_retained_picture_on_connect(
    client: FleetClient,
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    device_id: str,
) -> None:
    start_agent(agent, broker)
    client.apply(device_id, target(5, service("good", services.image1, 1, SLEEP)), timeout=30)
    client.wait_until(running("good", device_id), timeout=60)
    client.wait_until(converged(device_id))

    with FleetClient(Connection(mqtt_url=broker.url), devices=[device_id]) as late:
        device = late.device(device_id)  # no waiting: connect returns after the snapshot
        assert device is not None and device.online
        assert device.services["good"].service_status == "running"
        assert device.ack is not None and device.ack.version == 5
        assert device.target is not None and device.target.version == 5
        assert device.info is not None and device.info.device_id == device_id
        assert late.next_version(device_id) == 6
    agent.stop()
    client.wait_until(lambda d: d[device_id].availability == "offline")
    assert client.device(device_id).availability_since is not None  # type: ignore[union-attr]


def test_a_rejected_target_comes_back_as_its_ack_and_an_invalid_one_is_never_sent(
    client: FleetClient,
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    device_id: str,
) -> None:
    start_agent(agent, broker)
    client.apply(device_id, target(7, service("good", services.image1, 1, SLEEP)), timeout=30)
    stale = client.apply(device_id, target(3, service("good", services.image1, 1, SLEEP)))
    assert not stale.accepted and stale.code == 409 and stale.errors[0].path == "$.version"

    with pytest.raises(InvalidTarget) as invalid:
        client.publish_target(device_id, {"apps": {"1": {"appId": 2, "services": [{}]}}})
    paths = {e.path for e in invalid.value.errors}
    assert "$.apps.1.appId" in paths and "$.apps.1.services[0].serviceName" in paths

    # the rejected v3 is replaced on the broker by the v7 it displaced (restore_on_reject);
    # the client sees its own restore a moment later
    def restored(devices: dict[str, Device]) -> int | None:
        known = devices[device_id].target
        return known.version if known is not None and known.version == 7 else None

    assert client.wait_until(restored) == 7


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_commands_are_answered_by_request_id(
    protocol: str,
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    device_id: str,
) -> None:
    start_agent(agent, broker)
    conn = Connection(mqtt_url=broker.url, mqtt_protocol=protocol)  # type: ignore[arg-type]
    with FleetClient(conn, devices=[device_id]) as client:
        client.apply(device_id, target(1, service("bad", services.missing_image, 1)), timeout=30)
        client.wait_until(failing("bad", device_id))
        result = client.retry(device_id, "bad")
        assert result.ok and result.command == "retry" and result.services == ["bad"]
        unknown = client.retry(device_id, "nope")
        assert not unknown.ok and "unknown service" in (unknown.error or "")
        assert client.reconcile(device_id).ok


def test_waiting_for_a_device_that_never_answers_times_out_plainly(
    client: FleetClient,
) -> None:
    with pytest.raises(WaitTimeout, match="no result from ghost"):
        client.retry("ghost", timeout=0.5)
    with pytest.raises(WaitTimeout, match="no ack from ghost"):
        client.apply("ghost", target(1), timeout=0.5)
    client.clear_target("ghost")


def test_an_unreachable_broker_is_one_plain_error() -> None:
    conn = Connection(mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    with pytest.raises(BrokerUnreachable, match="cannot reach the broker"):
        FleetClient(conn).connect(timeout=1.5)


def test_a_change_stream_yields_changes_until_closed(
    client: FleetClient, broker: PrivateMosquitto
) -> None:
    with client.changes() as stream:
        client.publish_target("dev-x", target(1))
        change = stream.get(timeout=10)
        assert change is not None and change.device_id == "dev-x" and change.kind == "target"
    assert stream.get(timeout=0.1) is None
