"""The recorder keeps up with 1,000 simulated devices (retained messages the test publishes),
with bounded memory, on SQLite and on PostgreSQL. The real figure is in docs/benchmarks.md."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from fleet_agent.operator.connection import Connection
from fleet_agent.operator.recorder.schema import device_state, service_status, transitions
from fleet_agent.operator.recorder.service import Options, Recorder
from tests.integration.brokers import PrivateMosquitto
from tests.integration.helpers import wait_for
from tests.integration.recorders import Publisher, entry, error, rows, status

DEVICES = 1000


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (device_state, service_status, transitions)
        )


def _publish_fleet(broker: PrivateMosquitto, prefix: str, t0: float) -> None:
    sim = Publisher(broker.port)
    try:
        for n in range(DEVICES):
            d = f"{prefix}-{n:04d}"
            base = f"fleet/{d}"
            sim.send(f"{base}/availability", b"online")
            sim.send(
                f"{base}/info", {"deviceId": d, "agentVersion": "0.1.0", "labels": {"n": str(n)}}
            )
            sim.send(f"{base}/services/web", status(d, "web", t0))
            sim.send(f"{base}/history/web", [entry(t0 - 5, "downloading"), entry(t0, "running")])
            if n % 10:
                sim.send(f"{base}/services/db", status(d, "db", t0))
                sim.send(f"{base}/history/db", [entry(t0, "running")])
            else:  # every tenth device has a service in error
                failing = status(d, "db", t0, "error", error=error("ImagePullBackOff", t0))
                sim.send(f"{base}/services/db", failing)
                sim.send(f"{base}/history/db", [entry(t0, "error", "ImagePullBackOff", 1)])
            counts = {"running": 2} if n % 10 else {"running": 1, "error": 1}
            state = {
                "deviceId": d,
                "agentVersion": "0.1.0",
                "targetVersion": 1,
                "converged": n % 10 != 0,
                "counts": counts,
                "updatedAt": "2025-10-24T10:00:00.000Z",
            }
            sim.send(f"{base}/state", state)
    finally:
        sim.close()


def test_a_thousand_devices_are_all_recorded_soon_after_their_last_message(
    make_db: Any, broker: PrivateMosquitto, record_property: Any
) -> None:
    _, engine = make_db()
    options = Options(flush_interval=0.2, batch_size=500, max_pending=2000)
    recorder = Recorder(engine, Connection(mqtt_url=broker.url), options)
    recorder.start()
    t0 = time.time() - 60
    try:
        _publish_fleet(broker, "sim", t0)
        last_message = time.monotonic()
        expected = (DEVICES, 2 * DEVICES, 3 * DEVICES)
        wait_for(lambda: _counts(engine) == expected, 120, 0.2, "every row of 1,000 devices")
        took = time.monotonic() - last_message
    finally:
        recorder.stop()
    record_property("seconds_after_last_message", round(took, 2))
    print(f"1,000 devices recorded {took:.2f}s after the last message; peak batch {recorder.peak}")
    # memory bounded: the writer held the reader back (one change adds at most a state row, a
    # status or an ack, and the 20 entries of a history)
    assert recorder.peak <= options.max_pending + 22
    failing = [r for r in rows(engine, "device_state") if r["service_errors"]]
    assert len(failing) == DEVICES // 10
    assert all(set(r["service_errors"]) == {"db"} for r in failing)
    assert _counts(engine) == expected  # nothing more after the stop's final flush
