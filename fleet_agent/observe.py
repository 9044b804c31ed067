"""What a pass learns before it plans: every service's history brought up to date.

From the engine's list, the stops by hand and outages other threads reported (the `Inbox`),
and each newly seen exit, this derives the services' new `ServiceRuntime`s, always as a new
dict (the reconciler's runtimes are replaced whole, never changed in place). Why a container
exited (inspect and log tail) is read in the background (`Lookups`): until the answer comes,
the exit is not recorded (no restart is planned) and nothing else waits; the exit counts as
of the moment it was first seen, and as witnessed or not by the pass that first saw it.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from msgspec.structs import replace

from fleet_agent import masking, planner
from fleet_agent.backoff import Backoff
from fleet_agent.config import Settings
from fleet_agent.inbox import Inbox
from fleet_agent.lookups import Lookups
from fleet_agent.model import DesiredService
from fleet_agent.ports import ContainerEvent, EngineAPI, EngineError
from fleet_agent.runtime import (
    Container,
    ExitDetails,
    ServiceRuntime,
    forgive,
    record_exit,
    runtime_for,
    settle_crash,
    should_restart,
    with_exits,
)
from fleet_agent.store import ManualStops
from fleet_agent.workers import Workers

# An engine that shuts down stops every container the way a person would; its last `stop`
# event comes right before its event stream breaks. Stops and failures this close before an
# outage are the engine's; a stop by hand made earlier stays one.
SHUTDOWN_GRACE = 3.0
# How long a `die` event is believed over a list that still says running; while one without an
# exit code waits, look again this soon (one list each).
DIE_SETTLE, DIE_SETTLE_MAX = 0.01, 5.0
CLEAN = Backoff()  # a deploy backoff with nothing in it
Runtimes = dict[str, ServiceRuntime]


class Sighting(msgspec.Struct, frozen=True):
    """When an exit was first seen, and whether anyone was watching when it happened."""

    at: float
    wall: float
    unobserved: bool


class Observer:
    def __init__(
        self,
        settings: Settings,
        engine: EngineAPI,
        manual_stops: ManualStops,
        workers: Workers,
        kick: Callable[[], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.manual_stops = manual_stops
        self.inbox = Inbox(manual_stops, monotonic)
        self.unobserved = True  # exits seen now happened while nobody watched
        self.exits: Lookups[str, ExitDetails] = Lookups(workers, kick)
        self._seen: dict[str, Sighting] = {}  # exits whose details are being read
        self._deciding: set[str] = set()  # exits whose details the services' status awaits
        self.settling = False  # a died container is listed running, its exit code unknown

    def note_event(self, event: ContainerEvent) -> None:
        """An exit of the container's own: why is asked at once, beside the pass it kicks."""
        self.inbox.note_event(event)
        if event.action == "die" and not event.by_agent:
            container = event.container
            self.exits.prefetch(container, lambda: self.engine.exit_details(container))

    def look(self, listed: list[Container], now: float) -> list[Container]:
        """What the pass sees: the engine's list, and what the engine's events said since
        (a container that died is exited with its code, before the list catches up)."""
        died = self.inbox.died(listed, now, DIE_SETTLE_MAX)
        self.settling = any(d.exit_code is None for d in died.values())
        codes = {c: d.exit_code for c, d in died.items() if d.exit_code is not None}
        return with_exits(listed, codes)

    def take_inbox(self, now: float, runtimes: Runtimes) -> tuple[set[str], Runtimes]:
        """What other threads asked for since the last pass: retries, a lost engine."""
        taken = self.inbox.take()
        if taken.engine_lost_at is not None:
            runtimes = self.excuse_outage(taken.engine_lost_at, now, runtimes)
        return taken.retries, runtimes

    def excuse_outage(self, at: float, now: float, runtimes: Runtimes) -> Runtimes:
        """An engine going away stops every container and refuses steps the way crashes and
        people do: what was counted or marked just before it is forgiven, and only that."""
        self.unobserved = True
        since = at - SHUTDOWN_GRACE
        self.manual_stops.forget_since(since)
        self._seen = {
            c: replace(s, unobserved=True) if s.at >= since else s for c, s in self._seen.items()
        }
        return {n: forgive(rt, since, now) for n, rt in runtimes.items()}

    def sync(
        self,
        desired: list[DesiredService],
        containers: list[Container],
        runtimes: Runtimes,
        now: float,
        wall: float,
    ) -> Runtimes:
        grouped = planner.by_service(containers)
        synced: Runtimes = {}
        # Forget marks of containers that are gone. A mark on a running container may be a
        # stop still under way (the engine lists it as running until it is down), except in a
        # pass after nobody watched: then it was started again meanwhile.
        listed = {c.id for c in containers if not (self.unobserved and c.running)}
        self.manual_stops.keep_only(listed)
        exited = {c.id for c in containers if not c.running}
        self._seen = {c: s for c, s in self._seen.items() if c in exited}
        self.exits.keep_only(exited)
        self._deciding = set()
        for service in desired:
            runtime = runtime_for(service, runtimes.get(service.name))
            keep = planner.current_container(service, grouped.get(service.name, []))
            if keep is not None and (keep.id in self.manual_stops) != runtime.stopped_by_user:
                runtime = replace(runtime, stopped_by_user=not runtime.stopped_by_user)
            synced[service.name] = self._observe(service, keep, runtime, now, wall)
        return synced

    def reading(self) -> bool:
        """Whether an exit's details, being read, decide a status (the report is provisional:
        a restart follows, and the crash history shows). Without a restart, the exit and its
        code are all the status says: it goes out at once."""
        return bool(self._deciding)

    def _observe(
        self,
        service: DesiredService,
        keep: Container | None,
        runtime: ServiceRuntime,
        now: float,
        wall: float,
    ) -> ServiceRuntime:
        if keep is None:
            return runtime
        if keep.running:
            # running at its target: whatever failed on the way there is over
            if runtime.deploy != CLEAN or runtime.exit_seen is not None or not runtime.started_at:
                runtime = replace(
                    runtime, deploy=CLEAN, exit_seen=None, started_at=runtime.started_at or now
                )
            return settle_crash(runtime, now, self.settings.crash_reset_after)
        if keep.state != "exited" or runtime.exit_seen == keep.id:
            return runtime
        seen = self._seen.setdefault(keep.id, Sighting(now, wall, self.unobserved))
        answer = self.exits.ask(keep.id, lambda: self.engine.exit_details(keep.id))
        restart = service.service.config.restart
        if answer is None:  # recorded by the pass the answer kicks
            if should_restart(restart, keep.exit_code, runtime.stopped_by_user):
                self._deciding.add(keep.id)
            return runtime
        del self._seen[keep.id]
        self.inbox.exit_recorded(keep.id)
        if isinstance(answer, EngineError):
            answer = ExitDetails(exit_code=keep.exit_code if keep.exit_code is not None else -1)
        secrets = service.service.config.environment.values()
        details = replace(answer, log_tail=masking.mask(answer.log_tail, secrets))
        counts = not (seen.unobserved or runtime.stopped_by_user)
        runtime = settle_crash(runtime, seen.at, self.settings.crash_reset_after, details.ran_for)
        policy = self.settings.backoff
        return record_exit(runtime, keep, details, restart, policy, seen.at, counts, seen.wall)
