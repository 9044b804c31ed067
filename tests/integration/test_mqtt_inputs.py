"""Bad targets and commands over MQTT: the right ack code, a device alert, and nothing changed."""

from __future__ import annotations

import copy
import json
from typing import Any

import docker
import pytest

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


@pytest.fixture
def running(
    agent: AgentProcess, broker: PrivateMosquitto, probe: MqttProbe, services: Services
) -> dict[str, Any]:
    """An agent on MQTT at target version 5 with one running service."""
    agent.env.update(FLEET_AGENT_MQTT_URL=broker.url, FLEET_AGENT_MAX_TARGET_BYTES="4096")
    probe.publish("target", target(5, service("app", services.image1, 1, SLEEP)), retain=True)
    agent.start(target_file=False)
    status: dict[str, Any] = probe.wait_json(
        "services/app", lambda s: s["serviceStatus"] == "running"
    )
    return status


def _bad_targets(services: Services) -> list[tuple[str, bytes, int, set[str]]]:
    ok = service("app", services.image1, 1, SLEEP)
    wrong_types = target(6, copy.deepcopy(ok))
    wrong_types["apps"]["1001"]["services"][0]["serviceId"] = "one"
    wrong_types["apps"]["1001"]["services"][0]["config"]["ports"] = [80]
    dupes = target(7, ok, service("app", services.image2, 2, SLEEP))
    bad_ref = target(8, service("app", "127.0.0.1:5000/Fleet/app::1", 1, SLEEP))
    huge = target(9, service("app", services.image1, 1, SLEEP, environment={"X": "y" * 5000}))
    svc = "$.apps.1001.services"
    return [
        ("not JSON", b"{nope", 400, {"$"}),
        ("a JSON array", b"[1, 2]", 400, {"$"}),
        (
            "wrong field types",
            json.dumps(wrong_types).encode(),
            400,
            {f"{svc}[0].serviceId", f"{svc}[0].config.ports[0]"},
        ),
        ("duplicate names", json.dumps(dupes).encode(), 400, {f"{svc}[1].serviceName"}),
        ("an invalid image", json.dumps(bad_ref).encode(), 400, {f"{svc}[0].imageName"}),
        ("an oversized payload", json.dumps(huge).encode(), 413, {"$"}),
        ("a stale version", json.dumps(target(4, ok)).encode(), 409, {"$.version"}),
        # 2 KB nested 1,000 levels: once a RecursionError on paho's thread and no ack at all
        ("1,000 levels deep", b'{"apps": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400, {"$"}),
        (
            "a repeated key",
            json.dumps(target(10, ok)).encode().replace(b'"version"', b'"version": 11, "version"'),
            400,
            {"$.version"},
        ),
        # accepted once, it refused every normal version after it with 409, for good
        ("version 10^400", b'{"version": 1' + b"0" * 400 + b', "apps": {}}', 400, {"$.version"}),
        (
            "non-ASCII digits in a port",
            json.dumps(
                target(12, service("app", services.image1, 1, SLEEP, ports=["٨٠:٨٠"]))
            ).encode(),
            400,
            {f"{svc}[0].config.ports[0]"},
        ),
    ]


def _answer(probe: MqttProbe, payload: bytes, label: str) -> dict[str, Any]:
    """Publish a target and return the ack that answers it."""
    before = len(probe.all("target/ack"))
    probe.publish("target", payload, retain=True)
    acks: list[dict[str, Any]] = wait_for(
        lambda: probe.all("target/ack")[before:], what=f"ack for {label}"
    )
    return acks[-1]


def test_bad_targets_are_answered_with_the_right_code_and_change_nothing(
    running: dict[str, Any],
    agent: AgentProcess,
    probe: MqttProbe,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    for label, payload, code, paths in _bad_targets(services):
        ack = _answer(probe, payload, label)
        assert (ack["accepted"], ack["code"]) == (False, code), label
        assert {e["path"] for e in ack["errors"]} == paths, (label, ack["errors"])
        alert = probe.wait_json("alerts/_agent", lambda a: a["type"] == "TargetRejected")
        assert alert["severity"] == "warning" and str(code) in alert["message"]
        assert probe.json("state")["targetVersion"] == 5, label
        rows = by_service(api, device_id)["app"]
        assert [r["Id"] for r in rows] == [running["containerId"]], label
        persisted = json.loads((agent.state_dir / "target.json").read_bytes())
        assert persisted["target"]["version"] == 5, label

    # A command nested 1,000 levels deep gets a failed result; the agent stays subscribed.
    deep = b'{"requestId": "r-deep", "service": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    probe.publish("cmd/retry", deep)
    result = wait_for(lambda: probe.all("cmd/result"), what="result of a deep command")[-1]
    assert result["ok"] is False and "nested deeper" in result["error"], result

    # An exact replay of the accepted version is acknowledged again and does nothing more.
    replay = json.dumps(target(5, service("app", services.image1, 1, SLEEP))).encode()
    ack = _answer(probe, replay, "replay")
    assert (ack["accepted"], ack["code"], ack["version"]) == (True, 200, 5)
    wait_for(lambda: probe.raw("alerts/_agent") == b"", what="device alert cleared")

    # An empty payload means "no target": acknowledged with 204, nothing touched.
    ack = _answer(probe, b"", "empty payload")
    assert (ack["accepted"], ack["code"]) == (False, 204)
    assert [r["Id"] for r in by_service(api, device_id)["app"]] == [running["containerId"]]
    assert probe.json("services/app")["serviceStatus"] == "running"


def test_retry_command_on_an_exhausted_service_retries_it_at_once(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
) -> None:
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_BACKOFF_INITIAL="0.2",
        FLEET_AGENT_BACKOFF_MAX="0.2",
        FLEET_AGENT_MAX_RETRIES="2",
    )
    probe.publish("target", target(1, service("bad", services.missing_image)), retain=True)
    agent.start(target_file=False)
    exhausted = probe.wait_json("services/bad", lambda s: s["error"] and s["error"]["exhausted"])
    assert exhausted["error"]["retryCount"] == 2

    # A response topic outside `{p}/{d}/replies/` is not honoured (a monitor that may send
    # commands must not make the device publish elsewhere); the result still goes to cmd/result.
    probe.publish("cmd/reconcile", {"requestId": "r-0"}, ResponseTopic="replies/r-0")
    mine = f"{probe.base}/replies/console-1"
    probe.publish(
        "cmd/retry",
        {"service": "bad", "requestId": "r-1"},
        ResponseTopic=mine,
        CorrelationData=b"corr-1",
    )
    results = wait_for(lambda: probe.all("cmd/result")[1:], what="command result")
    result = results[-1]
    assert result == {"command": "retry", "ok": True, "requestId": "r-1", "services": ["bad"]}
    reply = wait_for(
        lambda: [(p, props) for t, p, props in probe.messages if t == mine], what="reply"
    )[0]
    assert json.loads(reply[0]) == result
    assert reply[1].CorrelationData == b"corr-1"
    # the agent published both answers in order on one connection: the first one is in by now
    assert [t for t, _, _ in probe.messages if t.startswith("replies/")] == []
    assert probe.all("cmd/result")[0]["requestId"] == "r-0"
    # retried at once: the count starts again, no 10-minute wait, not exhausted any more
    retried = probe.wait_json(
        "services/bad",
        lambda s: s["error"] and s["error"]["timestamp"] > exhausted["error"]["timestamp"],
    )
    assert retried["error"]["retryCount"] == 1

    probe.publish("cmd/retry", {"service": "ghost", "requestId": "r-2"})
    missing = wait_for(lambda: [r for r in probe.all("cmd/result") if r.get("requestId") == "r-2"])
    assert missing[0]["ok"] is False and "ghost" in missing[0]["error"]
    probe.publish("cmd/reconcile", {"requestId": "r-3"})
    done = wait_for(lambda: [r for r in probe.all("cmd/result") if r.get("requestId") == "r-3"])
    assert done[0] == {"command": "reconcile", "ok": True, "requestId": "r-3"}
