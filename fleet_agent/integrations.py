"""Publishers for the integrations: webhooks, the daily summary, device info, Home Assistant.

Each is a `Publisher` handed every pass's `Report` like status.json and MQTT. None of them does
slow work on the reconciler's thread: webhooks go to their own workers, MQTT publications are
queued by paho, the engine is asked for the device info on a thread of its own, and the
summary file is written only when its counts change (or once a minute).
`Integrations` builds the ones the settings ask for and schedules the summary.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from fleet_agent import __version__, hass, summary
from fleet_agent.config import Settings
from fleet_agent.model import Ack, AlertChange, iso
from fleet_agent.mqtt import MqttLink
from fleet_agent.ports import EngineError
from fleet_agent.publish import Publisher
from fleet_agent.report import Report
from fleet_agent.store import write_atomic
from fleet_agent.webhook import Webhooks
from fleet_agent.workers import ThreadPerJob, Workers

log = structlog.get_logger(__name__)
SUMMARY_FILE = "summary.json"
SECONDS_WRITE_EVERY = 60.0  # time in error alone is written at most this often
INFO_RETRY = 30.0


class SummaryKeeper:
    """The ledger of the daily summary: folded from every pass, persisted, published."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.device_id = settings.device_id
        self.window = settings.summary_window
        self.path = Path(settings.state_dir) / SUMMARY_FILE
        self.clock = clock
        self.outputs: list[Callable[[summary.Summary], None]] = []
        self._lock = threading.Lock()
        self.ledger = self._load()
        self._written_key = summary.counts_key(self.ledger)
        self._written_at = clock()

    def _load(self) -> summary.Ledger:
        try:
            ledger = msgspec.json.decode(self.path.read_bytes(), type=summary.Ledger)
        except FileNotFoundError:
            return summary.new_ledger(self.window)
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("summary file unreadable, counts start over", error=str(exc))
            return summary.new_ledger(self.window)
        return summary.restarted(ledger, self.window)

    def publish(self, report: Report) -> None:
        now = self.clock()
        with self._lock:
            self.ledger = summary.observe(self.ledger, report.services, report.alerts, now)
            key = summary.counts_key(self.ledger)
            if key != self._written_key or now - self._written_at >= SECONDS_WRITE_EVERY:
                self._write(key, now)

    def _write(self, key: bytes, now: float) -> None:
        try:
            write_atomic(self.path, msgspec.json.encode(self.ledger))
            self._written_key, self._written_at = key, now
        except OSError as exc:
            log.warning("summary file not written", error=str(exc))

    def run(self) -> None:
        """The scheduled job: summarize the last window and hand it to every output."""
        now = self.clock()
        with self._lock:
            doc = summary.summarize(self.ledger, self.device_id, now, self.window)
            self._write(summary.counts_key(self.ledger), now)
        log.info("daily summary", services=len(doc.services), to=doc.to)
        for output in self.outputs:
            try:
                output(doc)
            except Exception:
                log.exception("summary output failed")

    def close(self) -> None:
        with self._lock:
            self._write(summary.counts_key(self.ledger), self.clock())

    def ack(self, ack: Ack) -> None:
        pass


class WebhookAlerts:
    """Each pass's alert transitions (decided by the core) to the webhooks, keyed by alert."""

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def publish(self, report: Report) -> None:
        for change in report.alert_changes:
            body = webhook_body(change, report.state.updated_at)
            self.webhooks.post(f"alert/{change.service}", body)

    def ack(self, ack: Ack) -> None:
        pass


def webhook_body(change: AlertChange, at: str) -> bytes:
    """The alert payload plus `event` (it already holds `deviceId`); a cleared alert is
    stamped with the moment it cleared."""
    fields = msgspec.to_builtins(change.alert)
    if change.event == "cleared":
        fields["updatedAt"] = at
    return msgspec.json.encode({"event": change.event, **fields})


class DeviceInfo:
    """`{p}/{d}/info`: labels, the engine's version, os and arch, and when we started. The
    engine is asked in the background (a pass never waits for it); its answer is sent then."""

    def __init__(
        self,
        settings: Settings,
        describe: Callable[[], dict[str, str]],
        link: MqttLink,
        started: float,
        workers: Workers | None = None,
    ) -> None:
        self.describe, self.link = describe, link
        self.workers = workers or ThreadPerJob("info")
        self._lock = threading.Lock()
        self._asking = False
        self.topic = link.topic("info")
        self.doc: dict[str, Any] = {
            "deviceId": settings.device_id, "agentVersion": __version__,
            "labels": dict(settings.labels), "engine": None, "startedAt": iso(started),
        }  # fmt: skip
        self._tried_at = -INFO_RETRY
        self._engine_down = True

    def publish(self, report: Report) -> None:
        """Learn the engine once it answers (and again after it was away: it may be new)."""
        down = report.engine_error is not None
        wanted = not down and (self._engine_down or self.doc["engine"] is None)
        self._engine_down = down
        now = time.monotonic()
        if not wanted or (self.doc["engine"] is None and now - self._tried_at < INFO_RETRY):
            return
        with self._lock:
            if self._asking:
                return  # the answer under way is the one wanted
            self._tried_at, self._asking = now, True
        self.workers.submit(self._learn)

    def _learn(self) -> None:
        try:
            engine: dict[str, str] | None = self.describe()
        except EngineError as exc:
            log.warning("engine info unavailable", error=exc.message)
            engine = None
        except Exception:  # the thread must always let the next ask through
            log.exception("engine info failed")
            engine = None
        with self._lock:
            if engine is not None:
                self.doc["engine"] = engine
            self._asking = False
        self.announce()

    def announce(self) -> None:
        with self._lock:
            payload = msgspec.json.encode(self.doc)
        self.link.retain(self.topic, payload)

    def close(self) -> None:
        self.workers.close(0.0)  # a hung engine call never holds a shutdown

    def ack(self, ack: Ack) -> None:
        pass


class HomeAssistant:
    """Announces the device to Home Assistant; again when its set of services changes and
    whenever Home Assistant says `online` (its birth message, after a restart)."""

    def __init__(self, settings: Settings, link: MqttLink) -> None:
        self.link = link
        self.where = hass.Discovery(settings.device_id, link.base, settings.ha_prefix)
        self._services: list[str] | None = None
        self._removed: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.link.listen(self.where.status_topic, self._birth)
        # our retained config from an earlier run names services that may have left meanwhile
        self.link.listen(self.where.config_topic, self._earlier)

    def publish(self, report: Report) -> None:
        names = sorted(s.service_name for s in report.services)
        with self._lock:
            if names == self._services:
                return
            gone = set(self._services or []) - set(names)
            # a removed service keeps its platform-only entries, bounded, for late readers
            self._removed = [n for n in self._removed if n not in names][-50:] + sorted(gone)
            self._services = names
            self._announce()

    def _announce(self) -> None:
        if self._services is None:
            return
        payload = hass.device_config(self.where, self._services, self._removed)
        self.link.retain(self.where.config_topic, payload)

    def _earlier(self, payload: bytes) -> None:
        """Services an earlier run announced: those no longer in the target get removed."""
        names = hass.announced_services(payload)
        with self._lock:
            if self._services is None:
                self._removed = sorted(set(self._removed) | names)[-50:]
            else:
                stale = names - set(self._services) - set(self._removed)
                if stale:
                    self._removed = [*self._removed, *sorted(stale)][-50:]
                    self._announce()

    def _birth(self, payload: bytes) -> None:
        if payload.strip() == b"online":
            log.info("Home Assistant online, announcing again")
            with self._lock:
                self._announce()

    def ack(self, ack: Ack) -> None:
        pass


class Integrations:
    """What the settings ask for, as publishers, plus the summary's schedule."""

    def __init__(
        self,
        settings: Settings,
        describe: Callable[[], dict[str, str]],  # the engine's version, os and arch
        link: MqttLink | None,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.webhooks = Webhooks(settings)
        self.summary = SummaryKeeper(settings, clock)
        self.info = DeviceInfo(settings, describe, link, clock()) if link else None
        self.hass = HomeAssistant(settings, link) if link and settings.ha_discovery else None
        self.publishers: list[Publisher] = [self.summary]
        if self.webhooks.deliveries:
            self.publishers.append(WebhookAlerts(self.webhooks))
            self.summary.outputs.append(self._post_summary)
        if link is not None:
            self.summary.outputs.append(
                lambda doc: link.retain(link.topic("summary"), msgspec.json.encode(doc))
            )
        self.publishers += [p for p in (self.info, self.hass) if p is not None]

    def _post_summary(self, doc: summary.Summary) -> None:
        body = msgspec.json.encode({"event": "summary", **msgspec.to_builtins(doc)})
        self.webhooks.post("summary", body)

    def start(self, scheduler: Any) -> None:
        self.webhooks.start()
        if self.info is not None:
            self.info.announce()
        if self.hass is not None:
            self.hass.start()
        s = self.settings
        if s.summary_every is not None:
            trigger: Any = IntervalTrigger(seconds=s.summary_every, timezone=dt.UTC)
        else:
            hour, minute = s.summary_time
            trigger = CronTrigger(hour=hour, minute=minute, timezone=_local_zone())
        scheduler.add_job(
            self.summary.run, trigger, id="daily-summary", max_instances=1, coalesce=True
        )

    def stop(self) -> None:
        self.summary.close()
        if self.info is not None:
            self.info.close()
        self.webhooks.stop()


def _local_zone() -> Any:
    """The device's own time zone, as APScheduler wants it (tzlocal comes with APScheduler)."""
    try:
        from tzlocal import get_localzone  # noqa: PLC0415

        return get_localzone()
    except Exception:  # no zone configured: the offset in force now
        return dt.datetime.now().astimezone().tzinfo
