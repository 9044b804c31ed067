"""The agent behind the production broker: mTLS end to end, passwords from a file, and a
secret that never leaves the device's environment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import load
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe
from tests.integration.secure_broker import Client, ProductionMosquitto

SLEEP = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture
def secure(tmp_path: Path, device_id: str) -> Iterator[ProductionMosquitto]:
    broker = ProductionMosquitto(tmp_path / "broker")
    broker.add_client(device_id)
    broker.start()
    yield broker
    broker.stop()


def test_the_seed_scenario_runs_end_to_end_over_mutual_tls(
    agent: AgentProcess,
    secure: ProductionMosquitto,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    certs = secure.certs(device_id)
    agent.env.update(
        FLEET_AGENT_MQTT_URL=secure.url,
        FLEET_AGENT_MQTT_CA_FILE=str(certs["ca.crt"]),
        FLEET_AGENT_MQTT_CERT_FILE=str(certs["client.crt"]),
        FLEET_AGENT_MQTT_KEY_FILE=str(certs["client.key"]),
        FLEET_AGENT_BACKOFF_INITIAL="0.5",
        FLEET_AGENT_BACKOFF_MAX="1",
        FLEET_AGENT_MAX_RETRIES="3",
    )
    cloud = MqttProbe("127.0.0.1", secure.mtls_port, device_id, certs=secure.certs("cloud"))
    try:
        good = service("good", services.image1, 1, SLEEP)
        bad = service("bad", services.missing_image, 2)
        cloud.publish("target", target(1, good, bad), retain=True)
        agent.start(target_file=False)

        wait_for(
            lambda: cloud.raw("availability") == b"online", timeout=60, what="online over mTLS"
        )
        cloud.wait_json("target/ack", lambda a: a["accepted"] and a["version"] == 1, timeout=60)
        cloud.wait_json("services/good", lambda s: s["serviceStatus"] == "running", timeout=60)
        # every alert seen, not only the latest: the warning may escalate between two looks
        warning = wait_for(
            lambda: [a for a in cloud.all("alerts/bad") if a["severity"] == "warning"],
            timeout=60,
            what="a warning",
        )[0]
        assert warning["type"] == "ImagePullBackOff"
        exhausted = cloud.wait_json(
            "services/bad", lambda s: (s["error"] or {}).get("exhausted"), timeout=60
        )
        assert exhausted["error"]["type"] == "ErrImagePull"
        cloud.wait_json("alerts/bad", lambda a: a["type"] == "MaxRetriesExceeded", timeout=60)

        cloud.publish(
            "target", target(2, good, service("bad", services.image2, 2, SLEEP)), retain=True
        )
        cloud.wait_json("services/bad", lambda s: s["serviceStatus"] == "running", timeout=60)
        wait_for(lambda: cloud.raw("alerts/bad") == b"", timeout=60, what="alert cleared")
        state = cloud.wait_json(
            "state", lambda s: s["converged"] and s["targetVersion"] == 2, timeout=60
        )
        assert state["counts"] == {"running": 2}
        cloud.publish("cmd/reconcile", {"requestId": "m-1"})
        result = wait_for(lambda: cloud.all("cmd/result"), timeout=60, what="command over mTLS")[-1]
        assert result == {"command": "reconcile", "ok": True, "requestId": "m-1"}
        assert sorted(by_service(api, device_id)) == ["bad", "good"]
    finally:
        cloud.close()


def test_a_secret_printed_by_a_crashing_service_never_leaves_the_device(
    agent: AgentProcess,
    secure: ProductionMosquitto,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    password = secure.add_password(device_id)
    secure.reload()
    password_file = tmp_path / "mqtt.password"
    password_file.write_text(password + "\n")
    agent.env.update(
        FLEET_AGENT_MQTT_URL=f"mqtts://127.0.0.1:{secure.tls_port}",
        FLEET_AGENT_MQTT_CA_FILE=str(secure.dir / "ca.crt"),
        FLEET_AGENT_MQTT_USERNAME=device_id,
        FLEET_AGENT_MQTT_PASSWORD_FILE=str(password_file),
        FLEET_AGENT_BACKOFF_INITIAL="0.5",
        FLEET_AGENT_BACKOFF_MAX="1",
        FLEET_AGENT_MAX_RETRIES="3",
    )
    monitor = Client(secure.mtls_port, certs=secure.certs("monitor"))
    monitor.subscribe("#")
    leaky = service(
        "leaky",
        services.image1,
        1,
        ["sh", "-c", 'echo "connecting with token=$TOKEN"; echo "bye $TOKEN" >&2; exit 3'],
        environment={"TOKEN": canary, "PLAIN": "x"},
        restart="always",
    )
    try:
        agent.set_target(target(1, leaky))  # local file: the target itself never crosses MQTT
        agent.start()
        wait_for(lambda: monitor.received(f"fleet/{device_id}/availability"), what="online")
        crashed = wait_for(
            lambda: [
                p
                for p in monitor.received(f"fleet/{device_id}/services/leaky")
                if b"CrashLoopBackOff" in p and b"token=***" in p
            ],
            timeout=60,
            what="crash status with the masked output",
        )
        assert b"bye ***" in crashed[-1]
        wait_for(lambda: monitor.received(f"fleet/{device_id}/alerts/leaky"), what="alert")
        wait_for(lambda: monitor.received(f"fleet/{device_id}/history/leaky"), what="history")
        wait_for(lambda: monitor.received(f"fleet/{device_id}/events"), what="events")
    finally:
        agent.stop()
        monitor.close()
    secret = canary.encode()
    assert monitor.messages and all(secret not in payload for _, payload, _ in monitor.messages)
    assert password.encode() not in b"".join(p for _, p, _ in monitor.messages)
    logs = agent.log_path.read_bytes() + secure.log.read_bytes()
    assert b"leaky" in agent.log_path.read_bytes()  # the log did speak of the service
    assert secret not in logs and password.encode() not in logs
    files = {p.name: p.read_bytes() for p in agent.state_dir.rglob("*") if p.is_file()}
    assert secret in files.pop("target.json")  # the one place it belongs
    assert files and all(secret not in data for data in files.values()), sorted(files)


def test_the_monitor_role_runs_the_operator_tools_and_a_retry_round_trip(
    agent: AgentProcess, secure: ProductionMosquitto, services: Services, device_id: str
) -> None:
    certs = secure.certs(device_id)
    agent.env.update(
        FLEET_AGENT_MQTT_URL=secure.url,
        FLEET_AGENT_MQTT_CA_FILE=str(certs["ca.crt"]),
        FLEET_AGENT_MQTT_CERT_FILE=str(certs["client.crt"]),
        FLEET_AGENT_MQTT_KEY_FILE=str(certs["client.key"]),
    )
    cloud = Client(secure.mtls_port, certs=secure.certs("cloud"))
    cloud.subscribe(f"fleet/{device_id}/replies/#")
    agent.set_target(target(1, service("good", services.image1, 1, SLEEP)))
    agent.start()
    monitor = load(  # as an operator sets it up: the agent's variables, password from a file
        environ={
            "FLEET_AGENT_MQTT_URL": f"mqtts://127.0.0.1:{secure.tls_port}",
            "FLEET_AGENT_MQTT_CA_FILE": str(secure.dir / "ca.crt"),
            "FLEET_AGENT_MQTT_USERNAME": "monitor",
            "FLEET_AGENT_MQTT_PASSWORD_FILE": str(secure.dir / "monitor.password"),
        }
    )
    try:
        with FleetClient(monitor, [device_id], client_id="console-1").connect(30) as client:
            assert client.synced  # its sync marker is allowed: no wait for a snapshot
            client.wait_until(lambda d: d[device_id].state if device_id in d else None, 60)
            result = client.retry(device_id, timeout=60)
            assert result.ok and result.request_id
        reply_topic = f"fleet/{device_id}/replies/console-1"
        replies = wait_for(lambda: cloud.received(reply_topic), timeout=60, what="the reply")
        assert result.request_id.encode() in replies[0]
    finally:
        cloud.close()
