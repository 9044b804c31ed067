"""The operator's fleet model: folding retained and live messages into devices (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet_agent.operator import fleet, topics
from fleet_agent.operator.fleet import Device
from tests.unit.factories import T0

P = "fleet"


def status_doc(name: str = "web", state: str = "running", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "deviceId": "dev-001",
        "appId": 1,
        "appName": "a",
        "serviceId": 1,
        "serviceName": name,
        "imageName": "reg/app:1",
        "serviceStatus": state,
        "containerId": None,
        "runningImage": None,
        "restartCount": 0,
        "error": None,
        "targetVersion": 3,
        "updatedAt": "2025-10-24T10:15:00.000Z",
    }
    return doc | extra


def feed(
    messages: list[tuple[str, Any, bool]], now: float = T0
) -> tuple[dict[str, Device], list[fleet.Change]]:
    devices: dict[str, Device] = {}
    changes = []
    for topic, payload, retained in messages:
        parsed = topics.parse(P, topic)
        assert parsed is not None, topic
        raw = json.dumps(payload).encode() if isinstance(payload, dict | list) else payload
        raw = raw.encode() if isinstance(raw, str) else raw
        device, change = fleet.apply(devices.get(parsed.device), parsed, raw, retained, now)
        devices[parsed.device] = device
        changes.append(change)
    return devices, changes


def test_topics_are_parsed_into_device_kind_and_service() -> None:
    assert topics.parse(P, "fleet/dev-001/services/web") == ("dev-001", "services", "web")
    assert topics.parse(P, "fleet/dev-001/target/ack") == ("dev-001", "ack", None)
    assert topics.parse(P, "fleet/dev-001/cmd/result") == ("dev-001", "result", None)
    assert topics.parse(P, "fleet/_rollouts/r1") is None
    assert topics.parse(P, "fleet/dev-001/cmd/retry") is None
    assert topics.parse(P, "other/dev-001/state") is None
    assert topics.parse(P, "fleet/dev-001/services/a/b") is None


def test_subscriptions_cover_every_retained_topic_of_the_chosen_devices() -> None:
    every = topics.subscriptions(P)
    assert "fleet/+/services/+" in every and "fleet/+/target/ack" in every
    assert "fleet/+/events" not in every
    some = topics.subscriptions(P, ["b", "a"], events=True)
    assert some[0].startswith("fleet/a/") and "fleet/b/events" in some


def test_a_retained_status_is_decoded_into_the_contracts_type() -> None:
    devices, changes = feed([("fleet/dev-001/services/web", status_doc(), True)])
    web = devices["dev-001"].services["web"]
    assert web.service_status == "running" and web.target_version == 3
    assert changes[0].kind == "services" and changes[0].service == "web"
    assert changes[0].live is False and devices["dev-001"].last_message_at is None


def test_an_empty_payload_clears_the_service_alert_and_history() -> None:
    alert = {
        "deviceId": "dev-001",
        "service": "web",
        "severity": "warning",
        "type": "ImagePullBackOff",
        "message": "manifest unknown",
        "raisedAt": "x",
        "updatedAt": "y",
        "retryCount": 1,
    }
    devices, changes = feed(
        [
            ("fleet/dev-001/services/web", status_doc(), True),
            ("fleet/dev-001/alerts/web", alert, True),
            ("fleet/dev-001/history/web", [{"timestamp": "t", "serviceStatus": "error"}], True),
            ("fleet/dev-001/alerts/web", b"", False),
            ("fleet/dev-001/services/web", b"", False),
        ]
    )
    device = devices["dev-001"]
    assert device.services == {} and device.alerts == {}
    assert device.history["web"][0].service_status == "error"
    assert changes[-1].cleared and changes[-1].live


def test_a_payload_that_does_not_decode_is_a_problem_and_keeps_the_last_good_value() -> None:
    devices, changes = feed(
        [
            ("fleet/dev-001/services/web", status_doc(), True),
            ("fleet/dev-001/services/web", b"{not json", False),
        ]
    )
    device = devices["dev-001"]
    assert device.services["web"].service_status == "running"
    assert "services/web" in device.problems
    assert changes[-1].kind == "problem" and changes[-1].problem
    devices, _ = feed(
        [
            ("fleet/dev-001/services/web", b"[]", False),
            ("fleet/dev-001/services/web", status_doc(), False),
        ]
    )
    assert devices["dev-001"].problems == {}


def test_availability_since_is_known_only_from_a_live_change() -> None:
    devices, _ = feed([("fleet/dev-001/availability", "offline", True)], now=T0)
    assert devices["dev-001"].availability == "offline"
    assert devices["dev-001"].availability_since is None
    device, _ = fleet.apply(
        devices["dev-001"], topics.Topic("dev-001", "availability"), b"online", False, T0 + 5
    )
    assert device.online and device.availability_since == T0 + 5
    same, _ = fleet.apply(device, topics.Topic("dev-001", "availability"), b"online", False, T0 + 9)
    assert same.availability_since == T0 + 5 and same.last_message_at == T0 + 9


def test_the_accepted_version_is_the_highest_of_state_and_accepted_ack() -> None:
    state = {
        "deviceId": "dev-001",
        "agentVersion": "0.1.0",
        "targetVersion": 4,
        "converged": True,
        "counts": {},
        "updatedAt": "2025-10-24T10:15:00.000Z",
    }
    rejected = {"version": 9, "accepted": False, "code": 409, "receivedAt": "x", "errors": []}
    devices, _ = feed(
        [("fleet/dev-001/state", state, True), ("fleet/dev-001/target/ack", rejected, True)]
    )
    assert devices["dev-001"].accepted_version == 4
    accepted = rejected | {"version": 5, "accepted": True, "code": 200}
    devices, _ = feed([("fleet/dev-001/target/ack", accepted, True)])
    assert devices["dev-001"].accepted_version == 5
    assert Device("x").accepted_version is None


def test_a_device_is_in_error_with_a_failing_service_or_a_device_alert() -> None:
    error = {
        "type": "ImagePullBackOff",
        "message": "manifest unknown",
        "timestamp": "t",
        "retryCount": 3,
        "maxRetries": 10,
        "nextRetry": "2025-10-24T10:16:20.000Z",
        "exhausted": False,
    }
    devices, _ = feed([("fleet/dev-001/services/web", status_doc(error=error), True)])
    assert devices["dev-001"].in_error
    assert devices["dev-001"].services["web"].error.retry_count == 3  # type: ignore[union-attr]
    devices, _ = feed([("fleet/dev-002/services/web", status_doc(), True)])
    assert not devices["dev-002"].in_error


def test_the_last_report_is_the_newest_timestamp_the_device_published() -> None:
    devices, _ = feed(
        [
            (
                "fleet/dev-001/services/a",
                status_doc("a", updatedAt="2025-10-24T10:15:00.000Z"),
                True,
            ),
            (
                "fleet/dev-001/services/b",
                status_doc("b", updatedAt="2025-10-24T10:16:00.000Z"),
                True,
            ),
        ]
    )
    assert devices["dev-001"].last_report() == T0 + 60
    assert fleet.parse_time("garbage") is None


def test_a_retained_target_is_decoded_with_the_agents_validation() -> None:
    good = {"version": 2, "apps": {}}
    devices, _ = feed([("fleet/dev-001/target", good, True)])
    assert devices["dev-001"].target is not None and devices["dev-001"].target.version == 2
    devices, changes = feed([("fleet/dev-001/target", {"apps": {"1": {"appId": "x"}}}, True)])
    assert devices["dev-001"].target is None and "appId" in (changes[0].problem or "")


@pytest.mark.parametrize(
    ("topic", "payload", "field"),
    [
        ("fleet/d/events", {"deviceId": "d", "type": "state", "timestamp": "t"}, "event"),
        ("fleet/d/cmd/result", {"command": "retry", "ok": True, "requestId": "r"}, "result"),
    ],
)
def test_events_and_command_results_are_news_that_change_no_state(
    topic: str, payload: dict[str, Any], field: str
) -> None:
    devices, changes = feed([(topic, payload, False)])
    assert getattr(changes[0], field) is not None
    assert devices["d"] == Device("d", last_message_at=T0)


def test_info_and_summary_are_read_leniently() -> None:
    info = {"deviceId": "d", "agentVersion": "0.2.0", "labels": {"site": "b"}, "new": 1}
    summary = {"deviceId": "d", "from": "a", "to": "b", "services": {"web": {"restarts": 2}}}
    devices, _ = feed([("fleet/d/info", info, True), ("fleet/d/summary", summary, True)])
    assert devices["d"].info is not None and devices["d"].info.labels == {"site": "b"}
    assert devices["d"].summary is not None and devices["d"].summary.from_ == "a"
    assert devices["d"].summary.services["web"].restarts == 2
