"""The production Mosquitto config: TLS, mutual TLS and an ACL on %u keep devices apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import wait_for
from tests.integration.secure_broker import Client, ProductionMosquitto, ProductionNats


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionMosquitto]:
    broker = ProductionMosquitto(tmp_path_factory.mktemp("prod-broker"))
    for device in ("dev-a", "dev-b"):
        broker.add_client(device)
    broker.add_password("dev-c")
    broker.start()
    wait_for(lambda: _answers_tls(broker), timeout=10, what="both listeners")
    yield broker
    broker.stop()


def _answers_tls(broker: ProductionMosquitto) -> bool:
    probe = Client(broker.mtls_port, certs=broker.certs("cloud"))
    ok = probe.connected
    probe.close()
    return ok


@pytest.fixture
def cloud(secure: ProductionMosquitto) -> Iterator[Client]:
    client = Client(secure.mtls_port, certs=secure.certs("cloud"))
    assert client.connected
    yield client
    client.close()


def _retained(client: Client, topic: str, control: str) -> list[bytes]:
    """What `client` gets for `topic`, known once the retained `control` it may read arrived:
    the broker answers subscriptions of one connection in order."""
    client.subscribe(topic)
    client.subscribe(control)
    wait_for(lambda: client.received(control), timeout=10, what=f"control {control}")
    return client.received(topic)


def test_a_device_reads_its_own_target_but_never_another_devices(
    secure: ProductionMosquitto, cloud: Client
) -> None:
    cloud.publish("fleet/dev-a/target", b'{"apps": {}, "version": 1}', retain=True)
    cloud.publish("fleet/dev-b/target", b'{"apps": {}, "version": 2}', retain=True)
    device = Client(secure.mtls_port, certs=secure.certs("dev-a"))
    try:
        assert device.connected
        assert _retained(device, "fleet/dev-b/target", "fleet/dev-a/target") == []
        assert device.received("fleet/dev-a/target") == [b'{"apps": {}, "version": 1}']
        device.subscribe("fleet/#")  # a wildcard reaches nothing beyond its own topics either
        device.subscribe("fleet/dev-a/cmd/retry")
        cloud.publish("fleet/dev-b/cmd/retry", b"{}")
        cloud.publish("fleet/dev-a/cmd/retry", b"{}")
        wait_for(lambda: device.received("fleet/dev-a/cmd/retry"), what="own command")
        assert device.received("fleet/dev-b/cmd/retry") == []
    finally:
        device.close()


def test_a_device_cannot_write_its_own_target_or_another_devices_status(
    secure: ProductionMosquitto, cloud: Client
) -> None:
    cloud.publish("fleet/dev-a/target", b"from-cloud", retain=True)
    device = Client(secure.mtls_port, certs=secure.certs("dev-a"))
    try:
        device.publish("fleet/dev-a/target", b"from-device", retain=True)
        device.publish("fleet/dev-b/state", b"forged", retain=True)
        device.publish("fleet/dev-b/cmd/retry", b"{}")
        device.publish("fleet/dev-a/state", b"own-state", retain=True)  # allowed
    finally:
        device.close()
    reader = Client(secure.mtls_port, certs=secure.certs("cloud"))
    try:
        reader.subscribe("fleet/dev-b/state")
        assert _retained(reader, "fleet/dev-a/target", "fleet/dev-a/state") == [b"from-cloud"]
        assert reader.received("fleet/dev-a/state") == [b"own-state"]
        assert reader.received("fleet/dev-b/state") == []
    finally:
        reader.close()


def test_a_client_claiming_another_devices_client_id_gains_nothing(
    secure: ProductionMosquitto, cloud: Client
) -> None:
    cloud.publish("fleet/dev-b/target", b"secret-of-b", retain=True)
    cloud.publish("fleet/dev-a/target", b"for-a", retain=True)
    spoof = Client(secure.mtls_port, certs=secure.certs("dev-a"), client_id="fleet-agent-dev-b")
    try:
        assert spoof.connected
        assert _retained(spoof, "fleet/dev-b/target", "fleet/dev-a/target") == []
        spoof.publish("fleet/dev-b/availability", b"forged", retain=True)
    finally:
        spoof.close()
    reader = Client(secure.mtls_port, certs=secure.certs("cloud"))
    try:
        assert _retained(reader, "fleet/dev-b/availability", "fleet/dev-b/target") == []
    finally:
        reader.close()


def test_the_monitor_reads_everything_and_publishes_commands_only(
    secure: ProductionMosquitto, cloud: Client
) -> None:
    cloud.publish("fleet/dev-a/target", b"v1", retain=True)
    cloud.subscribe("fleet/dev-a/cmd/reconcile")
    monitor = Client(
        secure.tls_port,
        ca=secure.dir / "ca.crt",
        username="monitor",
        password=secure.password("monitor"),
    )
    try:
        assert monitor.connected
        monitor.subscribe("fleet/#")
        wait_for(lambda: monitor.received("fleet/dev-a/target"), what="monitor reads targets")
        monitor.publish("fleet/dev-a/target", b"from-monitor", retain=True)
        monitor.publish("fleet/dev-a/cmd/reconcile", b"{}")
        wait_for(lambda: cloud.received("fleet/dev-a/cmd/reconcile"), what="monitor's command")
    finally:
        monitor.close()
    reader = Client(secure.mtls_port, certs=secure.certs("cloud"))
    try:
        reader.subscribe("fleet/dev-a/target")
        wait_for(lambda: reader.received("fleet/dev-a/target"), what="target")
        assert reader.received("fleet/dev-a/target") == [b"v1"]
    finally:
        reader.close()


def test_tls_needs_the_ca_and_passwords_are_checked(secure: ProductionMosquitto) -> None:
    ca = secure.dir / "ca.crt"
    good = Client(secure.tls_port, ca=ca, username="dev-c", password=secure.password("dev-c"))
    no_ca = Client(secure.tls_port, username="dev-c", password=secure.password("dev-c"))
    wrong = Client(secure.tls_port, ca=ca, username="dev-c", password="guess")
    anonymous = Client(secure.tls_port, ca=ca)
    try:
        assert good.connected
        assert no_ca.error is not None and "CERTIFICATE_VERIFY_FAILED" in str(no_ca.error)
        assert not wrong.connected and wrong.connect_reason is not None
        assert wrong.connect_reason.is_failure
        assert not anonymous.connected
        assert anonymous.connect_reason is not None and anonymous.connect_reason.is_failure
    finally:
        for client in (good, no_ca, wrong, anonymous):
            client.close()


def test_a_server_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    elsewhere = ProductionMosquitto(tmp_path, names=("DNS:mqtt.elsewhere.example",))
    elsewhere.start()
    try:
        client = Client(elsewhere.mtls_port, certs=elsewhere.add_client("dev-a"))
        assert client.error is not None and "mismatch" in str(client.error), client.error
    finally:
        elsewhere.stop()


def test_mutual_tls_needs_a_client_certificate_of_our_ca(
    secure: ProductionMosquitto, tmp_path: Path
) -> None:
    device = Client(secure.mtls_port, certs=secure.certs("dev-a"))
    bare = Client(secure.mtls_port, ca=secure.dir / "ca.crt")
    other = ProductionPki(tmp_path)
    foreign = Client(secure.mtls_port, certs={**other.certs, "ca.crt": secure.dir / "ca.crt"})
    try:
        assert device.connected
        assert not bare.connected
        assert not foreign.connected
    finally:
        for client in (device, bare, foreign):
            client.close()


class ProductionPki:
    """A second CA with a client certificate named like a real device: not ours."""

    def __init__(self, folder: Path) -> None:
        from tests.integration.secure_broker import pki  # noqa: PLC0415

        pki("ca", str(folder))
        pki("client", str(folder), "dev-a")
        self.certs = {"client.crt": folder / "dev-a.crt", "client.key": folder / "dev-a.key"}


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionNats]:
    cluster = ProductionNats(tmp_path_factory.mktemp("prod-nats"), ["dev-a", "dev-b"])
    cluster.start()
    yield cluster
    cluster.stop()


def test_nats_accounts_keep_devices_apart_across_the_cluster(nats: ProductionNats) -> None:
    cloud = nats.client("cloud", 0)
    try:
        cloud.publish("fleet/dev-a/target", b"for-a", retain=True)
        cloud.publish("fleet/dev-b/target", b"for-b", retain=True)
    finally:
        cloud.close()
    device = nats.client("dev-a", 2)  # another node than the cloud's
    spy = nats.client("dev-a", 1)
    try:
        spy.subscribe("$MQTT/sub/#")  # the server's own delivery subjects: nothing gets through
        assert _retained(device, "fleet/dev-b/target", "fleet/dev-a/target") == []
        assert device.received("fleet/dev-a/target") == [b"for-a"]
        device.publish("fleet/dev-a/target", b"from-device", retain=True)
        device.publish("fleet/dev-b/state", b"forged", retain=True)
        device.publish("fleet/dev-a/state", b"own", retain=True)
    finally:
        device.close()
    monitor = nats.client("monitor", 1)
    try:
        monitor.publish("fleet/dev-a/target", b"from-monitor", retain=True)
        monitor.subscribe("fleet/dev-b/state")
        monitor.subscribe("fleet/dev-a/target")
        assert _retained(monitor, "fleet/dev-b/state", "fleet/dev-a/state") == []
        wait_for(lambda: monitor.received("fleet/dev-a/target"), what="the target")
        assert monitor.received("fleet/dev-a/target") == [b"for-a"]
        assert spy.messages == []
    finally:
        monitor.close()
        spy.close()
    assert not nats.client("dev-a", 0, password="guess").connected
