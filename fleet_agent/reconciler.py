"""One reconcile pass: read the whole target and the engine, act, report, say when to look again.

Level-triggered, as controller-runtime's reconcilers: a pass never trusts what it did before, it
lists the containers, lets the pure planner decide, runs each service's steps concurrently (one
failure never stops another service), starts pulls in the background (a slow pull never delays
another service), derives every status and returns the next deadline it needs a wake-up for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog
from msgspec.structs import replace

from fleet_agent import feed, logs, planner
from fleet_agent.backoff import Backoff
from fleet_agent.config import Settings
from fleet_agent.intake import NO_TARGET
from fleet_agent.model import Ack, DesiredService, Event, Target, iso
from fleet_agent.outcomes import (
    apply_pull,
    apply_step,
    pull_event,
    step_event,
)
from fleet_agent.ports import ContainerEvent, EngineAPI, EngineError
from fleet_agent.publish import Publisher, Report
from fleet_agent.pulls import Puller
from fleet_agent.runtime import (
    Container,
    ExitDetails,
    ServiceRuntime,
    forgive,
    next_retry_after,
    record_exit,
    retry_now,
    runtime_for,
    settle_crash,
)
from fleet_agent.spec import desired_services
from fleet_agent.status import StatusContext, build_report
from fleet_agent.steps import StepRunner
from fleet_agent.store import ManualStops

log = structlog.get_logger(__name__)
ENGINE_DOWN_POLL = 5.0
STEP_WORKERS = 4  # services whose steps run at once
DIE_SETTLE, DIE_SETTLE_MAX = 0.05, 5.0
SHUTDOWN_GRACE = 30.0  # stops seen this long before an outage are the engine's, not a person's


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        engine: EngineAPI,
        target: Callable[[], Target | None],
        publishers: Iterable[Publisher],
        kick: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.target = target
        self.publishers = list(publishers)
        self.kick = kick
        self.clock = clock
        self.policy = settings.backoff
        self.runtimes: dict[str, ServiceRuntime] = {}
        self.last_report: Report | None = None
        self.puller = Puller(engine, settings.pull_concurrency, kick)
        self.manual_stops = ManualStops(Path(settings.state_dir))
        self._unobserved = True  # exits seen now happened while nobody watched
        # Written by other threads (events, commands), taken by the next pass:
        self._inbox_lock = threading.Lock()
        self._dying: dict[str, float] = {}  # died per the engine's events, maybe still listed
        self._retries: set[str] = set()
        self._engine_lost_at: float | None = None
        self._acks: list[Ack] = []
        self.feed = feed.FeedState(device_id=settings.device_id)  # alerts, history
        self.steps = StepRunner(engine, STEP_WORKERS)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.puller.close()
        self.steps.close()

    def request_retry(self, services: Iterable[str]) -> list[str]:
        """Reset the backoff of the named services (all in error when empty) in the next pass,
        which this kicks. Never waits for a running pass (MQTT's network thread calls it)."""
        runtimes = self.runtimes  # replaced whole by each pass, never changed in place
        wanted = set(services) or {
            name for name, rt in runtimes.items() if rt.deploy.last or rt.crash.last
        }
        done = sorted(name for name in wanted if name in runtimes)
        with self._inbox_lock:
            self._retries.update(done)
        self.kick()
        return done

    def note_ack(self, ack: Ack) -> None:
        """A target was answered: a rejection raises the device alert, an acceptance clears
        it, in the pass this kicks."""
        if ack.code == NO_TARGET:
            return
        with self._inbox_lock:
            self._acks.append(ack)
        self.kick()

    def engine_lost(self, at: float) -> None:
        """The engine's event stream broke: it went away, maybe only for a moment."""
        with self._inbox_lock:
            self._engine_lost_at = at

    def run_pass(self) -> float:
        """Reconcile once; return the epoch time at which the next pass is needed."""
        with self._lock:
            now = self.clock()
            acked = self._take_acks()
            target = self.target()
            desired = desired_services(target)
            try:
                containers = self.engine.list_managed()
            except EngineError as exc:
                return self._engine_down(exc, now, acked)
            if target is None:  # "no target": nothing is touched, only reported
                return self._idle(containers, now)
            retries = self._take_inbox()
            self._sync(desired, containers, now)
            for name in retries & self.runtimes.keys():
                self.runtimes[name] = retry_now(self.runtimes[name])
            events = self._collect_pulls(now)
            plan = planner.plan(
                self.settings.device_id,
                desired,
                containers,
                self.runtimes,
                self.puller.under_way(),
                now,
            )
            for pull in plan.pulls:
                self.puller.submit(pull, self.runtimes[pull.service].config_hash)
            results = self.steps.run(plan.jobs)
            planned_at, now = now, self.clock()
            for result in results:
                name = result.step.service
                if name in self.runtimes:
                    self.runtimes[name] = apply_step(self.runtimes[name], result, self.policy, now)
                events.append(step_event(self.settings.device_id, result, now))
            if results:
                containers = self._relist(containers)
            report = self._report(target, desired, containers, events, now)
            self._publish(report)
            logs.log_pass(report, results, events, plan.pulls)
            self._unobserved = False
            return self._next_wake(planned_at, now, containers)

    def _take_acks(self) -> bool:
        """Apply the acks sent since the last pass to the device alert; whether any was."""
        with self._inbox_lock:
            acks, self._acks = self._acks, []
        for ack in acks:
            self.feed = feed.with_ack(self.feed, ack, self.clock())
        return bool(acks)

    def _take_inbox(self) -> set[str]:
        """What other threads asked for since the last pass: retries, a lost engine."""
        with self._inbox_lock:
            retries, self._retries = self._retries, set()
            lost, self._engine_lost_at = self._engine_lost_at, None
        if lost is not None:
            self._excuse_outage(lost)
        return retries

    def _excuse_outage(self, at: float) -> None:
        """An engine going away stops every container and refuses steps the way crashes and
        people do: what was counted or marked just before it is forgiven."""
        self._unobserved = True
        self.manual_stops.forget_since(at - SHUTDOWN_GRACE)
        self.runtimes = {n: forgive(rt, at - SHUTDOWN_GRACE) for n, rt in self.runtimes.items()}

    def _idle(self, containers: list[Container], now: float) -> float:
        """No target: report, and keep what happened for the first pass that has one."""
        self._take_inbox()  # an outage is excused now; retries have nothing to retry
        report = self._report(None, [], containers, [], now)
        self._publish(replace(report, state=replace(report.state, converged=False)))
        return now + self.settings.reconcile_interval

    def note_event(self, event: ContainerEvent) -> None:
        """An engine event: remember a stop by hand (the pass it kicks does the rest)."""
        if event.manual_stop:
            log.info("container stopped by hand", container=event.container[:12])
            self.manual_stops.add(event.container, self.clock())
        if event.action == "start":  # started again, by hand or by the agent under `always`
            self.manual_stops.discard(event.container)
        if event.action == "die":
            with self._inbox_lock:
                self._dying[event.container] = self.clock()

    def _engine_down(self, exc: EngineError, now: float, acked: bool) -> float:
        """No service pays for an engine outage: nothing is planned, no retry is counted."""
        log.warning("docker engine unavailable", error=exc.message)
        self._excuse_outage(now)
        report = self.last_report
        if report is None:
            target = self.target()
            report = self._report(target, desired_services(target), [], [], now)
        if report.engine_error != exc.message or acked:
            state = replace(report.state, converged=False, updated_at=iso(now))
            self._publish(replace(report, state=state, events=[], engine_error=exc.message))
        return now + min(ENGINE_DOWN_POLL, self.settings.reconcile_interval)

    def _relist(self, before: list[Container]) -> list[Container]:
        try:
            return self.engine.list_managed()
        except EngineError:
            return before

    def _sync(self, desired: list[DesiredService], containers: list[Container], now: float) -> None:
        grouped = planner.by_service(containers)
        runtimes: dict[str, ServiceRuntime] = {}
        # Forget marks of containers that are gone. A mark on a running container may be a
        # stop still under way (the engine lists it as running until it is down), except in a
        # pass after nobody watched: then it was started again meanwhile.
        listed = {c.id for c in containers if not (self._unobserved and c.running)}
        self.manual_stops.keep_only(listed)
        for service in desired:
            runtime = runtime_for(service, self.runtimes.get(service.name))
            keep = planner.current_container(service, grouped.get(service.name, []))
            if keep is not None:
                runtime = replace(runtime, stopped_by_user=keep.id in self.manual_stops)
            runtimes[service.name] = self._observe(service, keep, runtime, now)
        self.runtimes = runtimes

    def _observe(
        self, service: DesiredService, keep: Container | None, runtime: ServiceRuntime, now: float
    ) -> ServiceRuntime:
        if keep is None:
            return runtime
        if keep.running:
            # running at its target: whatever failed on the way there is over
            runtime = replace(
                runtime, deploy=Backoff(), exit_seen=None, started_at=runtime.started_at or now
            )
            return settle_crash(runtime, now, self.settings.crash_reset_after)
        if keep.state != "exited" or runtime.exit_seen == keep.id:
            return runtime
        try:
            details = self.engine.exit_details(keep.id)
        except EngineError:
            details = ExitDetails(exit_code=keep.exit_code if keep.exit_code is not None else -1)
        restart = service.service.config.restart
        counts = not (self._unobserved or runtime.stopped_by_user)
        runtime = settle_crash(runtime, now, self.settings.crash_reset_after)
        return record_exit(runtime, keep, details, restart, self.policy, now, counts)

    def _collect_pulls(self, now: float) -> list[Event]:
        events: list[Event] = []
        for result in self.puller.collect():
            runtime = self.runtimes.get(result.service)
            if runtime is not None:
                runtime = apply_pull(runtime, result, self.policy, now)
                self.runtimes[result.service] = runtime
                events.append(pull_event(self.settings.device_id, result, runtime, now))
        return events

    def _report(
        self,
        target: Target | None,
        desired: list[DesiredService],
        containers: list[Container],
        events: list[Event],
        now: float,
    ) -> Report:
        ctx = StatusContext(
            self.settings.device_id, target.version if target else None, self.policy, now
        )
        runtimes = {s.name: runtime_for(s, self.runtimes.get(s.name)) for s in desired}
        return build_report(ctx, desired, containers, runtimes, self.puller.under_way(), events)

    def _publish(self, report: Report) -> None:
        """Complete the report in the core (alerts, their changes, history, state events) and
        hand the same one to every publisher."""
        self.feed, report = feed.conclude(self.feed, report, self.clock())
        self.last_report = report
        for publisher in self.publishers:
            try:
                publisher.publish(report)
            except Exception:  # one broken transport must not stop reconciling
                log.exception("publisher failed", publisher=type(publisher).__name__)

    def _next_wake(self, planned_at: float, now: float, containers: list[Container]) -> float:
        deadlines = [now + self.settings.reconcile_interval]
        # The engine sends `die` a moment before its list says `exited`: look again shortly.
        running = {c.id for c in containers if c.running}
        with self._inbox_lock:
            self._dying = {
                c: at for c, at in self._dying.items() if c in running and now - at < DIE_SETTLE_MAX
            }
            if self._dying:
                deadlines.append(now + DIE_SETTLE)
        # a deadline the planner already saw as due was acted on by this very pass
        retry = next_retry_after(self.runtimes.values(), planned_at)
        return min([*deadlines, retry] if retry is not None else deadlines)
