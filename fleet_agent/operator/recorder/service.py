"""The running recorder: one `FleetClient` (subscription `{p}/+/#` through the client's own
filters), its changes folded into batches, a writer thread that flushes them, and an
APScheduler job that enforces retention.

Memory stays bounded: a batch keeps one state row per device and one row per natural key; it
is flushed every `flush_interval` seconds or as soon as it holds `batch_size` rows, and when the
writer falls behind by `max_pending` rows the client's dispatcher waits for it (the broker's
retained state is the buffer, not our memory).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.fleet import Change
from fleet_agent.operator.recorder import rows, store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Options:
    retention_days: float = 30.0
    retention_every: float = 3600.0  # seconds between retention runs
    flush_interval: float = 0.5
    batch_size: int = 2000
    max_pending: int = 20000


class Recorder:
    def __init__(self, engine: Engine, connection: Connection, options: Options) -> None:
        self.engine = engine
        self.options = options
        self.client = FleetClient(connection)
        self.written = 0  # rows handed to the database
        self.peak = 0  # the most rows ever pending at once (bounded by max_pending)
        self._batch = rows.Batch()
        self._last: dict[tuple[str, str], rows.StatusKey] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="recorder-writer")
        self._scheduler = BackgroundScheduler(timezone="UTC")

    def start(self, timeout: float = 10.0) -> None:
        self._writer.start()
        self.client.on_change(self._on_change)
        self.client.connect(timeout)
        self.flush()  # the snapshot is in: write it, then close the alerts it no longer holds
        devices = self.client.devices()
        active = {(d, s) for d, dev in devices.items() for s in dev.alerts}
        closed = store.close_missed(self.engine, active, devices)
        if closed:
            log.info("closed alerts cleared while no recorder listened", alerts=closed)
        self._scheduler.add_job(self.retention, "interval", seconds=self.options.retention_every)
        self._scheduler.start()
        self.retention()

    def retention(self) -> None:
        try:
            deleted = store.enforce_retention(self.engine, self.options.retention_days)
        except SQLAlchemyError as exc:
            log.warning("retention failed", error=str(exc))
            return
        if deleted:
            log.info("retention", deleted=deleted, days=self.options.retention_days)

    def stop(self) -> None:
        self.client.close()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._writer.is_alive():
            self._writer.join(30)
        self.flush()

    def _on_change(self, change: Change) -> None:
        with self._cond:
            while len(self._batch) >= self.options.max_pending and not self._stop.is_set():
                self._cond.wait(1.0)  # the writer is behind: hold the dispatcher
            rows.fold(self._batch, change, self._last, time.time())
            self.peak = max(self.peak, len(self._batch))
            if len(self._batch) >= self.options.batch_size:
                self._cond.notify_all()

    def flush(self) -> None:
        """Write what is pending now (also called by the writer thread)."""
        with self._cond:
            batch, self._batch = self._batch, rows.Batch()
            self._cond.notify_all()
        if not len(batch):
            return
        attempt = 0
        while True:  # a database that is down holds the recorder back; nothing is dropped
            try:
                store.write(self.engine, batch)
                self.written += len(batch)
                return
            except SQLAlchemyError as exc:
                attempt += 1
                log.warning("write failed, retrying", attempt=attempt, error=str(exc)[:300])
                if self._stop.is_set() and attempt >= 5:
                    log.error("write failed while stopping; batch lost", rows=len(batch))
                    return
                time.sleep(min(0.2 * 2**attempt, 10))

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if len(self._batch) < self.options.batch_size:
                    self._cond.wait(self.options.flush_interval)
            self.flush()
