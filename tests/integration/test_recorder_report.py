"""`recorder report`, `history` and `failing` over a compressed day: a simulated device
publishes (live statuses and retained history, as the agent does) with chosen timestamps over
the last 30 hours, and the recorder's answers are checked against what was sent."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fleet_agent import cli
from fleet_agent.model import iso
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.recorder import queries
from fleet_agent.operator.recorder.rows import from_epoch
from fleet_agent.operator.recorder.service import Options, Recorder
from tests.integration.brokers import PrivateMosquitto
from tests.integration.helpers import wait_for
from tests.integration.recorders import Publisher, entry, error, rows, status

H = 3600.0
D = "day-dev"


def _steps(now: float) -> list[tuple[float, str, str | None, int, int]]:
    """(hours ago, status, error type, retries, restart count) of the service `web`."""
    return [
        (30, "running", None, 0, 0),  # before the window
        (20, "error", "ImagePullBackOff", 1, 0),
        (19.5, "error", "ImagePullBackOff", 2, 0),
        (19, "running", None, 0, 0),
        (10, "error", "CrashLoopBackOff", 1, 1),
        (9, "running", None, 0, 2),
    ]


def _alert(at_raised: float, at: float, severity: str, kind: str) -> dict[str, Any]:
    return {
        "deviceId": D,
        "service": "web",
        "severity": severity,
        "type": kind,
        "message": "m",
        "raisedAt": iso(at_raised),
        "updatedAt": iso(at),
        "retryCount": 1,
    }


def _live_day(sim: Publisher, now: float) -> None:
    history: list[dict[str, Any]] = []
    for ago, state, kind, retries, restarts in _steps(now):
        at = now - ago * H
        err = error(kind, at, retries) if kind else None
        sim.send(
            f"fleet/{D}/services/web", status(D, "web", at, state, error=err, restartCount=restarts)
        )
        history.append(entry(at, state, kind, retries if kind else None))
        sim.send(f"fleet/{D}/history/web", history)
        if ago == 20:
            sim.send(f"fleet/{D}/alerts/web", _alert(at, at, "warning", "ImagePullBackOff"))
        if ago == 19.5:
            sim.send(
                f"fleet/{D}/alerts/web", _alert(at - 0.5 * H, at, "critical", "MaxRetriesExceeded")
            )
        if ago == 19:
            sim.send(f"fleet/{D}/alerts/web", b"")
    db_at = now - 2 * H  # the other service fails two hours ago and still does
    failing = status(D, "db", db_at, "error", error=error("ErrImagePull", db_at, 3, True))
    sim.send(f"fleet/{D}/services/db", failing)
    sim.send(f"fleet/{D}/history/db", [entry(db_at, "error", "ErrImagePull", 3)])
    sim.send(
        f"fleet/{D}/target/ack",
        {
            "version": 3,
            "accepted": False,
            "code": 409,
            "receivedAt": iso(now - 5 * H),
            "errors": [],
        },
    )


def test_the_report_of_a_compressed_day_counts_what_the_device_went_through(
    make_db: Any, broker: PrivateMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    url, engine = make_db()
    recorder = Recorder(engine, Connection(mqtt_url=broker.url), Options(flush_interval=0.1))
    recorder.start()
    now = time.time()
    sim = Publisher(broker.port)
    try:
        _live_day(sim, now)
        sim.flush()
        wait_for(
            lambda: len(rows(engine, "transitions", device_id=D)) == 7, 30, 0.2, "7 transitions"
        )
        wait_for(lambda: rows(engine, "acks", device_id=D), 30, 0.2, "the ack")
    finally:
        sim.close()
        recorder.stop()

    report = {
        r.service: r for r in queries.report(engine, from_epoch(now - 24 * H), from_epoch(now))
    }
    web, db = report["web"], report["db"]
    assert web.errors == {"ImagePullBackOff": 2, "CrashLoopBackOff": 1}
    assert web.seconds_in_error == pytest.approx(2 * H, abs=1)  # 20h->19h and 10h->9h ago
    assert web.restarts == 2
    assert web.worst_alert == "critical MaxRetriesExceeded"
    assert db.errors == {"ErrImagePull": 1} and db.seconds_in_error == pytest.approx(2 * H, abs=5)
    (alert,) = rows(engine, "alerts", device_id=D)
    assert alert["seconds_to_escalate"] == pytest.approx(0.5 * H)
    assert alert["cleared_at"] is not None

    assert cli.main(["recorder", "report", "--since", "24h", "--db", url]) == 1
    out = capsys.readouterr().out
    assert "CrashLoopBackOff 1, ImagePullBackOff 2" in out and "critical MaxRetriesExceeded" in out
    assert cli.main(["recorder", "history", D, "web", "--db", url]) == 0
    out = capsys.readouterr().out
    assert (
        "6 transitions" in out and sum("ImagePullBackOff" in line for line in out.splitlines()) == 2
    )
    assert cli.main(["recorder", "failing", "--since", "1h", "--db", url]) == 1
    out = capsys.readouterr().out
    assert "1 services" in out and "error ErrImagePull" in out and "web" not in out
