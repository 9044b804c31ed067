"""Wiring: target sources, the reconciler, its wake-ups, the engine's event stream, MQTT.

The target file watcher and MQTT hand received targets and commands to the `Receiver`, whose
worker calls `offer` and `command`; the engine's events, finished pulls and commands kick a
pass; `Wakeups` decides when passes run. This module only starts and stops those pieces in the
right order.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from fleet_agent import commands, config
from fleet_agent.admission import Admission
from fleet_agent.commands import CommandResult
from fleet_agent.config import Settings
from fleet_agent.engine import Engine
from fleet_agent.intake import Decision, internal_error, not_persisted
from fleet_agent.integrations import Integrations
from fleet_agent.model import Ack
from fleet_agent.mqtt import MqttLink
from fleet_agent.ports import Clock, EngineAPI, EngineError, SystemClock
from fleet_agent.publish import FilePublisher, Publisher
from fleet_agent.receiver import Receiver
from fleet_agent.reconciler import Reconciler
from fleet_agent.simconfig import SimConfig, is_sim
from fleet_agent.simengine import SimEngine
from fleet_agent.spec import desired_services
from fleet_agent.store import TargetStore
from fleet_agent.wakeups import Wakeups

log = structlog.get_logger(__name__)
WATCH_INTERVAL = 1.0
EVENTS_RETRY = 1.0
# "connected": the stream is (re)established; whatever happened meanwhile, look once.
KICKING_EVENTS = frozenset(
    {"connected", "start", "die", "stop", "kill", "oom", "destroy", "pause", "unpause"}
)


class TargetFileWatcher:
    """Offers the target file's content whenever the file changes (atomic renames included)."""

    def __init__(self, path: Path, offer: Callable[[bytes, str], object]) -> None:
        self.path = path
        self.offer = offer  # hands over; a target not stored is retried by the receiver
        self._seen: tuple[int, int, int] | None = None
        self._missing_reported = False

    def check(self) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            if stamp == self._seen:
                return
            payload = self.path.read_bytes()
        except OSError as exc:  # missing, a directory, unreadable: said once, looked at again
            if not self._missing_reported:
                missing = isinstance(exc, FileNotFoundError)
                what = "target file missing" if missing else "target file unreadable"
                log.warning(what, path=str(self.path), error=str(exc))
                self._missing_reported = True
            return
        self._missing_reported = False
        self._seen = stamp
        self.offer(payload, f"file {self.path}")


def make_engine(settings: Settings) -> Engine | SimEngine:
    """The Docker adapter, or the simulated engine when `docker_host` is `sim://...`."""
    if is_sim(settings.docker_host):
        return SimEngine(settings.device_id, SimConfig.from_url(settings.docker_host or ""))
    return Engine(
        settings.device_id,
        settings.docker_host,
        pull_timeout=settings.pull_timeout,
        stop_timeout=settings.stop_timeout,
    )


class Agent:
    def __init__(
        self,
        settings: Settings,
        target_file: Path | None = None,
        publishers: list[Publisher] | None = None,
        clock: Clock | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        state_dir = Path(settings.state_dir)
        self.store = TargetStore(state_dir, admission or config.admission(settings))
        self.publishers = [FilePublisher(state_dir), *(publishers or [])]
        engine = make_engine(settings)
        self.engine: EngineAPI = engine
        self.receiver = Receiver(
            self.offer, self.command, settings.store_retry_initial, settings.store_retry_max
        )
        self.watcher = TargetFileWatcher(target_file, self.receiver.target) if target_file else None
        self.link: MqttLink | None = None
        if settings.mqtt_enabled:
            # With a target file, MQTT still carries statuses but no longer brings targets.
            on_target = None if target_file else (lambda p: self.receiver.target(p, "mqtt"))
            self.link = MqttLink(settings, on_target, self.receiver.command)
            self.publishers.append(self.link)
        self.integrations = Integrations(settings, engine.describe, self.link, self.clock.wall)
        self.publishers += self.integrations.publishers
        admitted = self.store.admission
        self.reconciler = Reconciler(
            settings,
            self.engine,
            self.store.current,
            self.publishers,
            self.kick,
            self.clock,
            prepare=admitted.at_create if admitted else None,
        )
        self.scheduler = BackgroundScheduler(timezone=dt.UTC)  # the target file watcher
        self.wakeups = Wakeups(
            self.reconciler.run_pass, settings.reconcile_interval, self.clock.monotonic
        )
        self._stopping = threading.Event()
        self._events = threading.Thread(target=self._follow_events, name="events", daemon=True)

    def start(self) -> None:
        persisted = self.store.load()
        log.info(
            "agent starting",
            device_id=self.settings.device_id,
            persisted_version=persisted.version if persisted else None,
            state_dir=self.settings.state_dir,
        )
        self.wakeups.start()
        self.scheduler.start()
        self.integrations.start(self.scheduler)  # before MQTT connects: it subscribes too
        self.receiver.start()
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
        self._events.start()

    def stop(self) -> None:
        self._stopping.set()
        if self.link is not None:  # `offline` first: whatever follows may take a while
            self.link.say_offline()
        self.receiver.stop()
        self.engine.close_events()
        self.reconciler.close()  # cancels pulls first: a pass may be waiting on none of them
        self.wakeups.stop()  # returns once a running pass has ended
        if self.link is not None:  # the last pass's report goes out: what it remembered
            self.link.stop()
        self.scheduler.shutdown(wait=False)
        self.integrations.stop()  # no pass runs any more: the last counts are final
        log.info("agent stopped", device_id=self.settings.device_id)

    def kick(self) -> None:
        """Ask for a pass now; during a pass, the next one starts as soon as it ends."""
        self.wakeups.kick()

    def offer(self, payload: bytes, source: str) -> Ack:
        try:
            decision = self.store.offer(
                payload,
                self.clock.wall(),
                self.settings.max_target_bytes,
                self.settings.max_services,
            )
        except OSError as exc:  # never act on a target that is not on disk
            decision = Decision(not_persisted(payload, self.clock.wall(), str(exc)), None)
        except Exception as exc:  # a bug of ours: every target still gets its ack
            log.exception("taking a target failed", source=source)
            decision = Decision(internal_error(payload, self.clock.wall(), exc), None)
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
        # First: the pass it kicks need not wait for the ack to be written and sent.
        self.reconciler.note_ack(ack)  # the device alert follows what was rejected; kicks
        for publisher in self.publishers:
            try:
                publisher.ack(ack)
            except Exception:
                log.exception("publishing the ack failed", publisher=type(publisher).__name__)
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

    def _follow_events(self) -> None:
        """Kick a pass on every exit, start or removal; re-follow after the engine returns."""
        while not self._stopping.is_set():
            connected = False
            try:
                for event in self.engine.events():
                    connected = True
                    self.reconciler.note_event(event)
                    if event.action in KICKING_EVENTS:
                        self.kick()
            except EngineError:
                pass
            except Exception:
                log.exception("following engine events failed")
            if connected and not self._stopping.is_set():
                self.reconciler.engine_lost(
                    self.clock.monotonic()
                )  # even a restart of a few seconds
                self.kick()  # say so now; while it is down, passes look every few seconds
            self._stopping.wait(EVENTS_RETRY + random.uniform(0, EVENTS_RETRY))
