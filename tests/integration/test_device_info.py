"""The retained device info topic against a real broker and engine."""

from __future__ import annotations

import datetime as dt
import time

import docker

from tests.integration.brokers import PrivateMosquitto
from tests.integration.helpers import AgentProcess
from tests.integration.mqtt_probe import MqttProbe


def test_device_info_holds_labels_the_engine_and_when_the_agent_started(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    api: docker.APIClient,
    device_id: str,
) -> None:
    agent.env.update(FLEET_AGENT_MQTT_URL=broker.url, FLEET_AGENT_LABELS="site=berlin,rack=r3")
    before = time.time()
    agent.set_target({"apps": {}})
    agent.start()
    info = probe.wait_json("info", lambda d: d["engine"] is not None)
    engine = api.info()
    assert info["deviceId"] == device_id and info["agentVersion"]
    assert info["labels"] == {"site": "berlin", "rack": "r3"}
    assert info["engine"] == {
        "version": engine["ServerVersion"], "os": engine["OSType"],
        "arch": engine["Architecture"],
    }  # fmt: skip
    started = dt.datetime.fromisoformat(info["startedAt"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= started <= time.time()
    assert info["startedAt"].endswith("Z")
    # retained: a subscriber that comes later gets it too
    late = MqttProbe("127.0.0.1", broker.port, device_id)
    try:
        assert late.wait_json("info", timeout=5) == info
    finally:
        late.close()
