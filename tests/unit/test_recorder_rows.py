"""The recorder's pure parts: what a fleet change writes, and the report's arithmetic."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fleet_agent.operator.recorder import queries, rows
from fleet_agent.operator.recorder.rows import Batch, moment
from tests.unit.factories import T0
from tests.unit.test_operator_fleet import feed, status_doc

ERROR = {
    "type": "ImagePullBackOff",
    "message": "manifest unknown",
    "timestamp": "2025-10-24T10:15:00.000Z",
    "retryCount": 2,
    "maxRetries": 10,
    "nextRetry": "2025-10-24T10:16:00.000Z",
    "exhausted": False,
}


def folded(messages: list[tuple[str, Any, bool]]) -> Batch:
    _, changes = feed(messages)
    batch = Batch()
    last: dict[tuple[str, str], rows.StatusKey] = {}
    for change in changes:
        rows.fold(batch, change, last, T0)
    return batch


def test_a_timestamp_becomes_an_exact_naive_utc_moment_and_garbage_none() -> None:
    assert moment("2025-10-24T10:15:00.012Z") == dt.datetime(2025, 10, 24, 10, 15, 0, 12000)
    assert moment("2025-10-24T12:15:00.000+02:00") == dt.datetime(2025, 10, 24, 10, 15)
    assert moment("yesterday") is None and moment(None) is None


def test_the_device_row_holds_the_current_error_of_every_service_in_error() -> None:
    batch = folded(
        [
            ("fleet/dev-001/availability", "online", True),
            ("fleet/dev-001/services/web", status_doc("web"), True),
            ("fleet/dev-001/services/db", status_doc("db", "error", error=ERROR), True),
        ]
    )
    state = batch.states["dev-001"]
    assert state["availability"] == "online"
    assert list(state["service_errors"]) == ["db"]
    assert state["service_errors"]["db"]["type"] == "ImagePullBackOff"
    assert state["service_errors"]["db"]["retryCount"] == 2
    assert batch.statuses[("dev-001", "db")]["error_type"] == "ImagePullBackOff"  # type: ignore[index]


def test_history_entries_seen_twice_make_one_transition_each() -> None:
    entries = [
        {
            "timestamp": "2025-10-24T10:15:00.000Z",
            "serviceStatus": "error",
            "errorType": "ImagePullBackOff",
            "retryCount": 1,
        },
        {"timestamp": "2025-10-24T10:16:00.000Z", "serviceStatus": "running"},
    ]
    history = ("fleet/dev-001/history/web", entries, True)
    batch = folded([history, history, ("fleet/dev-001/history/web", entries[1:], False)])
    keys = sorted(batch.transitions)
    assert [(k[3], k[4]) for k in keys] == [("error", "ImagePullBackOff"), ("running", "")]


def test_a_live_status_change_gives_its_restart_count_but_no_transition_of_its_own() -> None:
    batch = folded(
        [
            ("fleet/dev-001/services/web", status_doc("web", "starting"), True),
            ("fleet/dev-001/services/web", status_doc("web", restartCount=3), False),
            ("fleet/dev-001/services/web", status_doc("web", restartCount=3), False),  # same
        ]
    )
    assert not batch.transitions
    assert batch.restarts == {("dev-001", "web", moment("2025-10-24T10:15:00.000Z")): 3}


def test_a_cleared_status_deletes_the_row_and_a_cleared_alert_closes_it() -> None:
    alert = {
        "deviceId": "dev-001",
        "service": "web",
        "severity": "warning",
        "type": "ImagePullBackOff",
        "message": "m",
        "raisedAt": "2025-10-24T10:15:00.000Z",
        "updatedAt": "2025-10-24T10:15:00.000Z",
        "retryCount": 1,
    }
    critical = alert | {
        "severity": "critical",
        "type": "MaxRetriesExceeded",
        "updatedAt": "2025-10-24T10:17:30.000Z",
    }
    batch = folded(
        [
            ("fleet/dev-001/services/web", status_doc("web"), True),
            ("fleet/dev-001/services/web", b"", False),
            ("fleet/dev-001/alerts/web", alert, False),
            ("fleet/dev-001/alerts/web", critical, False),
            ("fleet/dev-001/alerts/web", b"", False),
        ]
    )
    assert batch.statuses[("dev-001", "web")] is None
    ops = [op for op, _ in batch.alerts]
    assert ops == ["upsert", "upsert", "clear"]
    escalated = batch.alerts[1][1]
    assert (
        escalated["seconds_to_escalate"] == 150.0
        and escalated["first_type"] == "MaxRetriesExceeded"
    )


def test_an_ack_is_keyed_by_device_time_and_code() -> None:
    ack = {
        "version": 4,
        "accepted": False,
        "code": 409,
        "receivedAt": "2025-10-24T10:15:00.000Z",
        "errors": [{"path": "$.version", "message": "stale"}],
    }
    batch = folded(
        [("fleet/dev-001/target/ack", ack, True), ("fleet/dev-001/target/ack", ack, False)]
    )
    (row,) = batch.acks.values()
    assert (row["version"], row["code"], row["accepted"]) == (4, 409, False)
    assert row["errors"] == [{"path": "$.version", "message": "stale"}]


def _t(minutes: float, status: str, error: str = "", restarts: int | None = None) -> dict[str, Any]:
    at = dt.datetime(2025, 10, 24) + dt.timedelta(minutes=minutes)
    return {
        "device_id": "d",
        "service": "s",
        "at": at,
        "status": status,
        "error_type": error,
        "restart_count": restarts,
    }


def test_the_report_counts_errors_time_in_error_and_restarts_inside_the_window() -> None:
    since, now = dt.datetime(2025, 10, 24, 1), dt.datetime(2025, 10, 24, 5)
    before = [_t(30, "error", "CrashLoopBackOff", 2)]  # in error since before the window
    window = [
        _t(90, "running", "", 3),  # 30 min in error counted from `since`; one restart
        _t(120, "error", "ImagePullBackOff"),
        _t(130, "error", "ImagePullBackOff"),
        _t(150, "running", "", 0),  # a config change reset the count: 0 restarts more
        _t(200, "error", "CrashLoopBackOff", 2),  # two restarts; in error until `now`
    ]
    alerts = [
        {"device_id": "d", "service": "s", "severity": "warning", "type": "X"},
        {"device_id": "d", "service": "s", "severity": "critical", "type": "Y"},
    ]
    (entry,) = queries.summarise(before, window, alerts, since, now)
    assert entry.errors == {"ImagePullBackOff": 2, "CrashLoopBackOff": 1}
    assert entry.seconds_in_error == (30 + 30 + 100) * 60
    assert entry.restarts == 3
    assert entry.worst_alert == "critical Y"
