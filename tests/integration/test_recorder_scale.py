"""The recorder keeps up with 1,000 simulated devices (retained messages the test publishes),
with bounded memory, on SQLite and on PostgreSQL. The figures come from bench/recorder.py and are
in docs/benchmarks.md."""

from __future__ import annotations

import time
from typing import Any

from fleet_agent.operator.connection import Connection
from fleet_agent.operator.recorder.service import Options, Recorder
from tests.integration.brokers import PrivateMosquitto
from tests.integration.helpers import wait_for
from tests.integration.recorders import fleet_rows, publish_fleet, row_counts, rows

DEVICES = 1000


def test_a_thousand_devices_are_all_recorded_soon_after_their_last_message(
    make_db: Any, broker: PrivateMosquitto, record_property: Any
) -> None:
    _, engine = make_db()
    options = Options(flush_interval=0.2, batch_size=500, max_pending=2000)
    recorder = Recorder(engine, Connection(mqtt_url=broker.url), options)
    recorder.start()
    t0 = time.time() - 60
    try:
        publish_fleet(broker.port, DEVICES, "sim", t0)
        last_message = time.monotonic()
        expected = fleet_rows(DEVICES)
        wait_for(lambda: row_counts(engine) == expected, 120, 0.2, "every row of 1,000 devices")
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
    assert row_counts(engine) == expected  # nothing more after the stop's final flush
