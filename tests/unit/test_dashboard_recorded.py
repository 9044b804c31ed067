"""`fleet-agent dashboard --db`: the drawer reads the recorder's database, so its history goes
back further than the 20 retained entries and past alerts survive a dashboard restart."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from fleet_agent.operator.dashboard.app import Timing, create_app
from fleet_agent.operator.dashboard.guard import Guard
from fleet_agent.operator.dashboard.hub import Hub
from fleet_agent.operator.recorder import queries, store
from fleet_agent.operator.recorder.rows import Batch
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
