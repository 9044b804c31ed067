"""What other threads tell the reconciler between passes: engine events, retries, acks, outages.

The engine's event follower, MQTT and the command handler never wait for a pass: they leave
what they saw here and kick, and the next pass takes it all at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import msgspec
import structlog

from fleet_agent.model import Ack
from fleet_agent.ports import ContainerEvent
from fleet_agent.runtime import Container
from fleet_agent.store import ManualStops

log = structlog.get_logger(__name__)


class Died(msgspec.Struct, frozen=True):
    """A `die` event the engine's list may not show yet: when it came, the code it said."""

    at: float
    exit_code: int | None


class Taken(msgspec.Struct, frozen=True):
    retries: set[str]
    engine_lost_at: float | None


class Inbox:
    def __init__(self, manual_stops: ManualStops, monotonic: Callable[[], float]) -> None:
        self.manual_stops = manual_stops
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._retries: set[str] = set()
        self._acks: list[Ack] = []
        self._engine_lost_at: float | None = None
        self._dying: dict[str, Died] = {}  # died per the engine's events, maybe still listed
        self._recorded: set[str] = set()  # exits recorded: a late `die` of theirs is old news

    def retry(self, services: set[str]) -> None:
        with self._lock:
            self._retries.update(services)

    def ack(self, ack: Ack) -> None:
        with self._lock:
            self._acks.append(ack)

    def engine_lost(self, at: float) -> None:
        with self._lock:
            self._engine_lost_at = at

    def note_event(self, event: ContainerEvent) -> None:
        """Remember a stop by hand (its time is that of its last event: `stop` comes after
        the stop grace, right before an engine that shuts down closes its stream)."""
        now = self.monotonic()
        if event.manual_stop:
            log.info("container stopped by hand", container=event.container[:12])
            self.manual_stops.add(event.container, now)
        with self._lock:
            if event.action == "start":  # started again, by hand or by the agent (`always`)
                self._dying.pop(event.container, None)
                self._recorded.discard(event.container)
            if event.action == "die" and event.container not in self._recorded:
                self._dying[event.container] = Died(now, event.exit_code)
        if event.action == "start":
            self.manual_stops.discard(event.container)

    def take(self) -> Taken:
        with self._lock:
            taken = Taken(self._retries, self._engine_lost_at)
            self._retries, self._engine_lost_at = set(), None
        return taken

    def take_acks(self) -> list[Ack]:
        with self._lock:
            acks, self._acks = self._acks, []
        return acks

    def died(self, listed: list[Container], now: float, settle_max: float) -> dict[str, Died]:
        """The containers the engine said died that its list still shows running. Each stays
        so until the list agrees, the container starts again, its exit is recorded, or
        `settle_max` seconds pass: then the list alone is believed again."""
        running = {c.id for c in listed if c.running}
        with self._lock:
            self._dying = {
                c: d for c, d in self._dying.items() if c in running and now - d.at < settle_max
            }
            self._recorded &= {c.id for c in listed}
            return dict(self._dying)

    def exit_recorded(self, container: str) -> None:
        """The exit is in the service's history: its `die` says nothing more until a start."""
        with self._lock:
            self._dying.pop(container, None)
            self._recorded.add(container)
