"""Wiring: the scheduler, the target sources and the reconciler, and their start and stop.

APScheduler runs one reconcile job: periodically as a safety net, at the earliest retry deadline
the last pass asked for, and at once when something kicks it (a new target, a finished pull).
Two passes never overlap; a kick that arrives during a pass makes the next one start right after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from fleet_agent import commands
from fleet_agent.commands import CommandResult
from fleet_agent.config import Settings
from fleet_agent.engine import Engine
from fleet_agent.model import Ack
from fleet_agent.mqtt import MqttLink
from fleet_agent.publish import FilePublisher, Publisher
from fleet_agent.reconciler import Reconciler
from fleet_agent.spec import desired_services
from fleet_agent.store import TargetStore

log = structlog.get_logger(__name__)
RECONCILE_JOB = "reconcile"
WATCH_INTERVAL = 1.0


class TargetFileWatcher:
    """Offers the target file's content whenever the file changes (atomic renames included)."""

    def __init__(self, path: Path, offer: Callable[[bytes, str], Ack]) -> None:
        self.path = path
        self.offer = offer
        self._seen: tuple[int, int, int] | None = None
        self._missing_reported = False

    def check(self) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            if stamp == self._seen:
                return
            payload = self.path.read_bytes()
        except FileNotFoundError:
            if not self._missing_reported:
                log.warning("target file missing", path=str(self.path))
                self._missing_reported = True
            return
        self._seen, self._missing_reported = stamp, False
        self.offer(payload, f"file {self.path}")


class Agent:
    def __init__(
        self,
        settings: Settings,
        target_file: Path | None = None,
        publishers: list[Publisher] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        state_dir = Path(settings.state_dir)
        self.store = TargetStore(state_dir)
        self.publishers = [FilePublisher(state_dir), *(publishers or [])]
        self.engine = Engine(
            settings.device_id,
            settings.docker_host,
            pull_timeout=settings.pull_timeout,
            stop_timeout=settings.stop_timeout,
        )
        self.watcher = TargetFileWatcher(target_file, self.offer) if target_file else None
        self.link: MqttLink | None = None
        if settings.mqtt_url not in ("", "none"):
            # With a target file, MQTT still carries statuses but no longer brings targets.
            on_target = None if target_file else (lambda payload: self.offer(payload, "mqtt"))
            self.link = MqttLink(settings, on_target, self.command, clock)
            self.publishers.append(self.link)
        self.reconciler = Reconciler(
            settings, self.engine, self.store.current, self.publishers, self.kick, clock
        )
        self.scheduler = BackgroundScheduler(timezone=dt.UTC)
        self._kicked = threading.Event()

    def start(self) -> None:
        persisted = self.store.load()
        log.info(
            "agent starting",
            device_id=self.settings.device_id,
            persisted_version=persisted.version if persisted else None,
            state_dir=self.settings.state_dir,
        )
        if self.link is not None:
            self.link.start()
        if self.watcher is not None:
            self.watcher.check()
            self.scheduler.add_job(
                self.watcher.check,
                IntervalTrigger(seconds=WATCH_INTERVAL),
                id="watch-target",
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.add_job(
            self._pass,
            IntervalTrigger(seconds=self.settings.reconcile_interval),
            id=RECONCILE_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        self.reconciler.close()
        if self.link is not None:
            self.link.stop()
        log.info("agent stopped", device_id=self.settings.device_id)

    def kick(self) -> None:
        """Ask for a pass now; during a pass, the next one starts as soon as it ends."""
        self._kicked.set()
        self._reschedule(self.clock())

    def offer(self, payload: bytes, source: str) -> Ack:
        decision = self.store.offer(payload, self.clock(), self.settings.max_target_bytes)
        ack = decision.ack
        if ack.accepted:
            log.info(
                "target accepted",
                source=source,
                version=ack.version,
                new=decision.target is not None,
            )
        else:
            errors = [f"{e.path}: {e.message}" for e in ack.errors]
            log.error(
                "target rejected", source=source, code=ack.code, version=ack.version, errors=errors
            )
        for publisher in self.publishers:
            try:
                publisher.ack(ack)
            except Exception:
                log.exception("publishing the ack failed", publisher=type(publisher).__name__)
        if decision.target is not None:
            self.kick()
        return ack

    def command(self, name: str, payload: bytes) -> CommandResult:
        result = commands.execute(
            name, payload, self.reconciler.request_retry, self.kick, self._service_names
        )
        log.info(
            "command", command=name, ok=result.ok, services=result.services, error=result.error
        )
        return result

    def _service_names(self) -> set[str]:
        return {s.name for s in desired_services(self.store.current())}

    def _pass(self) -> None:
        self._kicked.clear()
        try:
            wake = self.reconciler.run_pass()
        except Exception:  # the scheduler must keep running whatever a pass hits
            log.exception("reconcile pass crashed")
            wake = self.clock() + self.settings.reconcile_interval
        self._reschedule(self.clock() if self._kicked.is_set() else wake)

    def _reschedule(self, at: float) -> None:
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(
                RECONCILE_JOB, next_run_time=dt.datetime.fromtimestamp(at, dt.UTC)
            )
