"""The link comes and goes: broker restarts, a broker that is down at start-up, a NATS cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.brokers import NatsCluster, PrivateMosquitto, TlsMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


def _ids(api: docker.APIClient, device_id: str) -> dict[str, str]:
    return {name: rows[0]["Id"] for name, rows in by_service(api, device_id).items()}


def test_a_broker_restart_under_a_running_agent_reconnects_republishes_and_keeps_containers(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    agent.env["FLEET_AGENT_MQTT_URL"] = broker.url
    probe = MqttProbe("127.0.0.1", broker.port, device_id)
    probe.publish("target", target(1, service("app", services.image1, 1, SLEEP)), retain=True)
    agent.start(target_file=False)
    probe.wait_json("services/app", lambda s: s["serviceStatus"] == "running")
    probe.close()
    before = _ids(api, device_id)

    broker.stop()  # no persistence: every retained message is gone with it
    broker.start()
    probe = MqttProbe("127.0.0.1", broker.port, device_id)
    try:
        status = probe.wait_json("services/app", lambda s: s["serviceStatus"] == "running")
        wait_for(lambda: probe.raw("availability") == b"online", what="online again")
        probe.wait_json("state", lambda s: s["converged"])
        probe.wait_json("target/ack", lambda a: a["accepted"])
        assert status["containerId"] == before["app"]
        assert _ids(api, device_id) == before
    finally:
        probe.close()


def test_an_agent_started_with_the_broker_down_runs_its_persisted_target_then_reports(
    agent: AgentProcess,
    tmp_path: Path,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    # Accept a target in local mode first, so it is persisted on the device.
    agent.set_target(target(3, service("app", services.image1, 1, SLEEP)))
    agent.start()
    wait_for(lambda: (s := agent.service("app")) and s["serviceStatus"] == "running")
    agent.stop()

    later = PrivateMosquitto(tmp_path / "later")
    agent.env["FLEET_AGENT_MQTT_URL"] = later.url  # nothing listens there yet
    agent.start(target_file=False)
    wait_for(lambda: agent.ack() is not None or agent.status() is not None)
    wait_for(lambda: (s := agent.status()) and s["state"]["converged"], what="converged offline")
    assert set(_ids(api, device_id)) == {"app"}

    later.start()
    probe = MqttProbe("127.0.0.1", later.port, device_id)
    try:
        status = probe.wait_json("services/app", lambda s: s["serviceStatus"] == "running")
        assert status["targetVersion"] == 3
        wait_for(lambda: probe.raw("availability") == b"online", what="online")
        # a newer retained target published while it was offline is applied once it connects
        probe.publish("target", target(4, service("app", services.image2, 1, SLEEP)), retain=True)
        updated = probe.wait_json(
            "services/app", lambda s: s["targetVersion"] == 4 and s["serviceStatus"] == "running"
        )
        assert updated["runningImage"] == services.image2
    finally:
        probe.close()
        agent.stop()
        later.stop()


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path)
    cluster.start()
    yield cluster
    cluster.stop()


def test_mqtt_311_across_a_three_node_nats_cluster(
    agent: AgentProcess, nats: NatsCluster, services: Services, device_id: str
) -> None:
    cloud_port, device_port, monitor_port = nats.mqtt_ports
    cloud = MqttProbe("127.0.0.1", cloud_port, device_id, v5=False)
    monitor = MqttProbe("127.0.0.1", monitor_port, device_id, v5=False)
    try:
        cloud.publish("target", target(1, service("app", services.image1, 1, SLEEP)), retain=True)
        left = ("services/gone", "history/gone", "alerts/gone")  # as an earlier run left them
        for topic in left:
            cloud.publish(topic, b'{"left": true}', retain=True)
        agent.env.update(
            FLEET_AGENT_MQTT_URL=f"mqtt://127.0.0.1:{device_port}",
            FLEET_AGENT_MQTT_PROTOCOL="3.1.1",
        )
        agent.start(target_file=False)
        status = monitor.wait_json("services/app", lambda s: s["serviceStatus"] == "running")
        assert status["targetVersion"] == 1
        monitor.wait_json("target/ack", lambda a: a["accepted"] and a["version"] == 1)
        wait_for(lambda: monitor.raw("availability") == b"online", what="online")
        # found by the agent's brief QoS 0 look on another node, and cleared
        wait_for(lambda: all(monitor.raw(t) == b"" for t in left), what="leftovers cleared")
        cloud.publish("cmd/reconcile", {"requestId": "n-1"})
        result = wait_for(lambda: monitor.all("cmd/result"), what="command result")[-1]
        assert result == {"command": "reconcile", "ok": True, "requestId": "n-1"}
    finally:
        cloud.close()
        monitor.close()


def test_availability_is_offline_after_a_clean_stop_and_after_a_crash(
    agent: AgentProcess, broker: PrivateMosquitto, device_id: str
) -> None:
    agent.env["FLEET_AGENT_MQTT_URL"] = broker.url
    probe = MqttProbe("127.0.0.1", broker.port, device_id)
    try:
        agent.start(target_file=False)
        wait_for(lambda: probe.raw("availability") == b"online", what="online")
        assert agent.stop() == 0
        wait_for(lambda: probe.raw("availability") == b"offline", what="offline said on stop")

        agent.start(target_file=False)
        wait_for(lambda: probe.raw("availability") == b"online", what="online again")
        agent.kill()
        wait_for(lambda: probe.raw("availability") == b"offline", what="offline by Last Will")
    finally:
        probe.close()


def test_mqtts_with_a_client_certificate_carries_targets_and_statuses(
    agent: AgentProcess, tmp_path: Path, services: Services, device_id: str
) -> None:
    broker = TlsMosquitto(tmp_path / "tls")
    broker.start()
    probe = MqttProbe("127.0.0.1", broker.port, device_id, certs=broker.certs)
    try:
        probe.publish("target", target(1, service("app", services.image1, 1, SLEEP)), retain=True)
        agent.env.update(
            FLEET_AGENT_MQTT_URL=broker.url,
            FLEET_AGENT_MQTT_CA_FILE=str(broker.certs["ca.crt"]),
            FLEET_AGENT_MQTT_CERT_FILE=str(broker.certs["client.crt"]),
            FLEET_AGENT_MQTT_KEY_FILE=str(broker.certs["client.key"]),
        )
        agent.start(target_file=False)
        status = probe.wait_json("services/app", lambda s: s["serviceStatus"] == "running")
        assert status["targetVersion"] == 1
        wait_for(lambda: probe.raw("availability") == b"online", what="online over TLS")
    finally:
        probe.close()
        agent.stop()
        broker.stop()
