"""The origin story over MQTT against a real Mosquitto, engine and registry."""

from __future__ import annotations

import docker

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


def test_seed_scenario_over_mqtt_backs_off_exhausts_alerts_and_heals(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_BACKOFF_INITIAL="0.5",
        FLEET_AGENT_BACKOFF_MAX="1",
        FLEET_AGENT_MAX_RETRIES="4",
    )
    good = service("good", services.image1, 1, SLEEP)
    probe.publish("target", target(1, good, service("bad", services.missing_image, 2)), retain=True)
    agent.start(target_file=False)

    wait_for(lambda: probe.raw("availability") == b"online", what="online")
    probe.wait_json("target/ack", lambda a: a["accepted"] and a["code"] == 200)
    probe.wait_json("services/good", lambda s: s["serviceStatus"] == "running")
    backing_off = probe.wait_json(
        "services/bad", lambda s: s["error"] and s["error"]["type"] == "ImagePullBackOff"
    )
    assert backing_off["error"]["nextRetry"] > backing_off["error"]["timestamp"]
    warning = probe.wait_json("alerts/bad", lambda a: a["severity"] == "warning")
    assert warning["type"] == "ImagePullBackOff" and warning["service"] == "bad"

    exhausted = probe.wait_json("services/bad", lambda s: s["error"]["exhausted"])
    assert exhausted["error"]["type"] == "ErrImagePull"
    assert exhausted["error"]["retryCount"] == 4 and exhausted["error"]["nextRetry"] is None
    counts = [s["error"]["retryCount"] for s in probe.all("services/bad") if s["error"]]
    # a held provisional report may be replaced before it goes out, so a count can be skipped
    # on the retained topic: what is seen only grows, ends at 4, and every attempt is an event
    assert counts == sorted(counts) and set(counts) <= {1, 2, 3, 4} and counts[-1] == 4
    critical = probe.wait_json("alerts/bad", lambda a: a["severity"] == "critical")
    assert critical["type"] == "MaxRetriesExceeded"
    assert critical["raisedAt"] == warning["raisedAt"]
    # each failed pull is an ErrImagePull event
    pulls = [e for e in probe.all("events") if e["type"] == "pull" and e["service"] == "bad"]
    assert len(pulls) == 4 and {e["errorType"] for e in pulls} == {"ErrImagePull"}

    fixed = service("bad", services.image2, 2, SLEEP)
    probe.publish("target", target(2, good, fixed), retain=True)
    healed = probe.wait_json(
        "services/bad", lambda s: s["serviceStatus"] == "running" and s["targetVersion"] == 2
    )
    assert healed["error"] is None
    wait_for(lambda: probe.raw("alerts/bad") == b"", what="alert cleared")
    state = probe.wait_json("state", lambda s: s["converged"])
    assert state["counts"] == {"running": 2} and state["targetVersion"] == 2
    assert all(len(rows) == 1 for rows in by_service(api, device_id).values())

    late = MqttProbe("127.0.0.1", broker.port, device_id)
    try:
        late.wait_json("services/good", lambda s: s["serviceStatus"] == "running", timeout=5)
        late.wait_json("services/bad", lambda s: s["serviceStatus"] == "running", timeout=5)
        late.wait_json("state", lambda s: s["converged"], timeout=5)
        assert late.raw("alerts/bad") is None  # cleared retained topics are not delivered
        history = late.wait_json("history/bad", timeout=5)
        assert history[-1]["serviceStatus"] == "running"
        assert any(h.get("errorType") == "ErrImagePull" for h in history)
    finally:
        late.close()


def test_a_service_leaving_the_target_clears_its_retained_topics(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
) -> None:
    agent.env["FLEET_AGENT_MQTT_URL"] = broker.url
    one, two = service("one", services.image1, 1, SLEEP), service("two", services.image1, 2, SLEEP)
    probe.publish("target", target(1, one, two), retain=True)
    agent.start(target_file=False)
    probe.wait_json("services/two", lambda s: s["serviceStatus"] == "running")
    probe.publish("target", target(2, one), retain=True)
    wait_for(lambda: probe.raw("services/two") == b"", what="status cleared")
    wait_for(lambda: probe.raw("history/two") == b"", what="history cleared")
    probe.wait_json("services/one", lambda s: s["serviceStatus"] == "running")
