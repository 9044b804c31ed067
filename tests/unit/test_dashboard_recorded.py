"""`fleet-agent dashboard --db`: the drawer reads the recorder's database, so its history goes
back further than the 20 retained entries and past alerts survive a dashboard restart; the alerts
panel lists the fleet's cleared alerts from it a page at a time."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from fleet_agent.operator.dashboard.app import Timing, create_app
from fleet_agent.operator.dashboard.guard import Guard
from fleet_agent.operator.dashboard.hub import Hub
from fleet_agent.operator.recorder import queries, store
from fleet_agent.operator.recorder.rows import Batch, Row
from tests.unit.test_dashboard_app import LOCAL, Fleet, failing_device

T = dt.datetime(2025, 10, 24, 10)


def recorded_db(path: Path) -> Engine:
    engine = store.open_engine(f"sqlite:///{path / 'rec.db'}")
    batch = Batch()
    for n in range(30):  # 30 transitions: more than the 20 the agent retains
        at = T + dt.timedelta(minutes=n)
        kind = "ImagePullBackOff" if n % 2 == 0 else ""
        batch.transitions[("dev-001", "bad", at, "error", kind)] = {
            "device_id": "dev-001",
            "service": "bad",
            "at": at,
            "status": "error" if kind else "downloading",
            "error_type": kind,
            "message": f"attempt {n}",
            "retry_count": n,
            "restart_count": None,
        }
    batch.alerts.append(
        (
            "upsert",
            {
                "device_id": "dev-001",
                "service": "bad",
                "raised_at": T,
                "first_type": "ImagePullBackOff",
                "type": "MaxRetriesExceeded",
                "severity": "critical",
                "message": "m",
                "retry_count": 3,
                "updated_at": T + dt.timedelta(minutes=5),
                "escalated_at": T + dt.timedelta(minutes=5),
                "seconds_to_escalate": 300.0,
            },
        )
    )
    batch.alerts.append(
        ("clear", {"device_id": "dev-001", "service": "bad", "at": T + dt.timedelta(minutes=40)})
    )
    store.write(engine, batch)
    return engine


def test_with_a_database_the_drawer_shows_the_whole_recorded_history_and_past_alerts(
    tmp_path: Path,
) -> None:
    engine = recorded_db(tmp_path)
    app = create_app(
        Fleet(failing_device()),
        Guard(None),
        Hub(),
        Timing(),
        functools.partial(queries.drawer, engine),
    )
    detail = TestClient(app, base_url=LOCAL).get("/api/devices/dev-001/services/bad").json()
    history = detail["history"]
    assert len(history) == 30  # not cut at 20
    assert (
        history[0]["message"] == "attempt 29"
        and history[-1]["timestamp"] == "2025-10-24T10:00:00.000Z"
    )
    assert history[0]["errorType"] is None and history[1]["errorType"] == "ImagePullBackOff"
    (past,) = detail["pastAlerts"]
    assert (past["firstType"], past["type"], past["severity"]) == (
        "ImagePullBackOff",
        "MaxRetriesExceeded",
        "critical",
    )
    assert past["durationSeconds"] == 2400.0 and past["clearedAt"] == "2025-10-24T10:40:00.000Z"


def test_a_database_that_cannot_answer_leaves_the_retained_history(tmp_path: Path) -> None:
    def broken(
        _device: str, _service: str
    ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        raise OSError("database gone")

    app = create_app(Fleet(failing_device()), Guard(None), Hub(), Timing(), broken)
    detail = TestClient(app, base_url=LOCAL).get("/api/devices/dev-001/services/bad").json()
    assert detail["history"] == [] and "pastAlerts" not in detail


def _alert(device: str, raised: dt.datetime, critical: bool = False) -> Row:
    return {
        "device_id": device,
        "service": "web",
        "raised_at": raised,
        "first_type": "ImagePullBackOff",
        "type": "MaxRetriesExceeded" if critical else "ImagePullBackOff",
        "severity": "critical" if critical else "warning",
        "message": "manifest unknown",
        "retry_count": 3,
        "updated_at": raised + dt.timedelta(minutes=2),
        "escalated_at": raised + dt.timedelta(minutes=2) if critical else None,
        "seconds_to_escalate": 120.0 if critical else None,
    }


def fleet_alerts(cleared: int = 25) -> Batch:
    """`cleared` alerts of as many devices, raised a minute apart and cleared 10 minutes after
    (every fifth escalated first), and one alert still open."""
    batch = Batch()
    for n in range(cleared):
        device, raised = f"dev-{n:03d}", T + dt.timedelta(minutes=n)
        batch.alerts.append(("upsert", _alert(device, raised, critical=n % 5 == 0)))
        clear = {"device_id": device, "service": "web", "at": raised + dt.timedelta(minutes=10)}
        batch.alerts.append(("clear", clear))
    batch.alerts.append(("upsert", _alert("dev-open", T + dt.timedelta(hours=5))))
    return batch


def fleet_alerts_db(path: Path) -> Engine:
    engine = store.open_engine(f"sqlite:///{path / 'fleet.db'}")
    store.write(engine, fleet_alerts())
    return engine


def past_client(engine: Engine) -> TestClient:
    past = functools.partial(queries.past_alerts_page, engine)
    app = create_app(Fleet(failing_device()), Guard(None), Hub(), Timing(), None, past)
    return TestClient(app, base_url=LOCAL)


def test_the_alerts_panel_pages_through_the_fleets_cleared_alerts_newest_first(
    tmp_path: Path,
) -> None:
    http = past_client(fleet_alerts_db(tmp_path))
    first = http.get("/api/alerts/past", params={"limit": 20}).json()
    devices = [a["device"] for a in first["alerts"]]
    assert devices == [f"dev-{n:03d}" for n in range(24, 4, -1)]  # the open one is not past
    assert first["more"] is not None
    rest = http.get("/api/alerts/past", params={"limit": 20, "before": first["more"]}).json()
    assert [a["device"] for a in rest["alerts"]] == [f"dev-{n:03d}" for n in range(4, -1, -1)]
    assert rest["more"] is None
    oldest = rest["alerts"][-1]
    assert oldest == {
        "device": "dev-000",
        "service": "web",
        "raisedAt": "2025-10-24T10:00:00.000Z",
        "firstType": "ImagePullBackOff",
        "type": "MaxRetriesExceeded",
        "severity": "critical",
        "escalatedAt": "2025-10-24T10:02:00.000Z",
        "secondsToEscalate": 120.0,
        "clearedAt": "2025-10-24T10:10:00.000Z",
        "durationSeconds": 600.0,
    }


def test_the_past_alerts_follow_the_filter_words_in_any_case(tmp_path: Path) -> None:
    http = past_client(fleet_alerts_db(tmp_path))

    def found(words: str) -> list[str]:
        doc = http.get("/api/alerts/past", params={"q": words}).json()
        return [a["device"] for a in doc["alerts"]]

    assert found("DEV-007") == ["dev-007"]
    assert found("critical dev-01") == ["dev-015", "dev-010"]
    assert found("maxretries") == ["dev-020", "dev-015", "dev-010", "dev-005", "dev-000"]
    assert found("dev_0") == [] and found("dev-%7") == []  # LIKE's wildcards are plain letters
    assert len(found("")) == 25


def test_bad_paging_parameters_get_a_clear_error(tmp_path: Path) -> None:
    http = past_client(fleet_alerts_db(tmp_path))
    for params, word in (({"limit": "many"}, "limit"), ({"before": "yesterday"}, "cursor")):
        answer = http.get("/api/alerts/past", params=params)
        assert answer.status_code == 400 and word in answer.json()["error"]
    assert len(http.get("/api/alerts/past", params={"limit": 0}).json()["alerts"]) == 1
    assert len(http.get("/api/alerts/past", params={"limit": 10**6}).json()["alerts"]) == 25


def test_a_database_that_cannot_answer_is_said_in_the_panel_and_the_drawer() -> None:
    def down(*_args: object) -> Any:
        raise OSError("connection refused\nmore detail")

    app = create_app(Fleet(failing_device()), Guard(None), Hub(), Timing(), down, down)
    http = TestClient(app, base_url=LOCAL)
    answer = http.get("/api/alerts/past")
    assert answer.status_code == 503
    assert answer.json()["error"] == "the recorder's database cannot be read: connection refused"
    detail = http.get("/api/devices/dev-001/services/bad").json()
    assert detail["recorderError"].endswith("cannot be read: connection refused")


def test_without_a_database_there_is_no_past_alerts_endpoint_and_the_page_shows_none() -> None:
    http = TestClient(create_app(Fleet(), Guard(None), Hub(), Timing()), base_url=LOCAL)
    assert http.get("/api/alerts/past").status_code == 404
    assert '<meta name="fleet-recorder" content="">' in http.get("/").text


def test_with_a_database_the_page_says_so(tmp_path: Path) -> None:
    page = past_client(fleet_alerts_db(tmp_path)).get("/").text
    assert '<meta name="fleet-recorder" content="on">' in page
