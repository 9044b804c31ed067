"""Retention on SQLite and PostgreSQL: at start and then by its APScheduler job, the recorder
deletes transitions, cleared alerts and acks older than the retention, and keeps the rest (open
alerts however old)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from fleet_agent.operator.connection import Connection
from fleet_agent.operator.recorder import store
from fleet_agent.operator.recorder.rows import Batch
from fleet_agent.operator.recorder.service import Options, Recorder
from tests.integration.brokers import PrivateMosquitto
from tests.integration.helpers import wait_for
from tests.integration.recorders import rows
from tests.unit.test_dashboard_recorded import _alert

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _aged(days: float, device: str = "dev-1") -> Batch:
    """A transition, an ack, a cleared alert (cleared `days` ago) and an open one."""
    at = NOW - dt.timedelta(days=days)
    batch = Batch()
    batch.transitions[(device, "web", at, "running", "")] = {
        "device_id": device,
        "service": "web",
        "at": at,
        "status": "running",
        "error_type": "",
        "message": None,
        "retry_count": None,
        "restart_count": 0,
    }
    batch.acks[(device, at, 200)] = {
        "device_id": device,
        "received_at": at,
        "code": 200,
        "version": 1,
        "accepted": True,
        "errors": [],
    }
    batch.alerts.append(("upsert", _alert(device, at - dt.timedelta(hours=1))))
    batch.alerts.append(("clear", {"device_id": device, "service": "web", "at": at}))
    open_alert = _alert(device, at) | {"service": "db"}
    batch.alerts.append(("upsert", open_alert))
    return batch


def _kept(engine: Engine) -> dict[str, list[tuple[str, Any]]]:
    return {
        "transitions": sorted((r["device_id"], r["at"]) for r in rows(engine, "transitions")),
        "acks": sorted((r["device_id"], r["received_at"]) for r in rows(engine, "acks")),
        "alerts": sorted((r["device_id"], r["service"]) for r in rows(engine, "alerts")),
    }


def test_retention_deletes_what_is_older_at_start_and_then_every_interval(
    make_db: Any, broker: PrivateMosquitto
) -> None:
    _, engine = make_db()
    store.write(engine, _aged(40, "old"))
    store.write(engine, _aged(10, "young"))
    options = Options(retention_days=30, retention_every=0.5)
    recorder = Recorder(engine, Connection(mqtt_url=broker.url), options)
    recorder.start()
    try:
        young = NOW - dt.timedelta(days=10)
        after_start = {
            "transitions": [("young", young)],
            "acks": [("young", young)],
            "alerts": [("old", "db"), ("young", "db"), ("young", "web")],  # open ones stay
        }
        assert _kept(engine) == after_start
        store.write(engine, _aged(31, "later"))  # ages past the retention while it runs
        assert len(_kept(engine)["transitions"]) == 2
        open_ones = [("later", "db"), ("old", "db"), ("young", "db"), ("young", "web")]
        expected = after_start | {"alerts": open_ones}
        wait_for(lambda: _kept(engine) == expected, 30, 0.2, "the scheduled run")
    finally:
        recorder.stop()
