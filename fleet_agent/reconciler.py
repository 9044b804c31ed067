"""One reconcile pass: read the whole target and the engine, act, report, say when to look again.

Level-triggered, as controller-runtime's reconcilers: a pass never trusts what it did before. It
lists the containers (its only engine call), brings histories up to date (`observe.py`), lets
the planner decide, hands steps, pulls and questions to the engine to the background (a hung
call holds up only its own service), collects what ended since the last pass, derives every
status, alert and history entry, and returns its next deadline (monotonic; wall time is only
for published stamps). `runtimes` is replaced whole, never changed in place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog
from msgspec.structs import replace

from fleet_agent import feed, logs, masking, planner
from fleet_agent.config import Settings
from fleet_agent.images import KnownImages
from fleet_agent.intake import NO_TARGET
from fleet_agent.memory import Memory
from fleet_agent.model import Ack, DesiredService, Event, Target, iso
from fleet_agent.observe import DIE_SETTLE, Observer
from fleet_agent.outcomes import (
    CANCELLED,
    IMAGE_GONE,
    StepResult,
    apply_pull,
    apply_step,
    pull_event,
    step_event,
)
from fleet_agent.ports import Clock, ContainerEvent, EngineAPI, EngineError, SystemClock
from fleet_agent.publish import Publisher
from fleet_agent.pulls import Key, Puller
from fleet_agent.report import Report
from fleet_agent.runtime import (
    Container,
    ServiceRuntime,
    next_retry_after,
    retry_now,
    runtime_for,
)
from fleet_agent.spec import ContainerSpec, desired_services
from fleet_agent.status import StatusContext, build_report
from fleet_agent.steps import StepRunner
from fleet_agent.store import ManualStops
from fleet_agent.workers import Pool, ThreadPerJob, Workers

log = structlog.get_logger(__name__)
ENGINE_DOWN_POLL = 5.0
CLOSE_WAIT = 3.0  # seconds a shutdown waits for steps and pulls under way


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        engine: EngineAPI,
        target: Callable[[], Target | None],
        publishers: Iterable[Publisher],
        kick: Callable[[], None],
        clock: Clock | None = None,
        step_workers: Workers | None = None,
        pull_workers: Workers | None = None,
        lookup_workers: Workers | None = None,
        prepare: Callable[[ContainerSpec], ContainerSpec] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.target = target
        self.publishers = list(publishers)
        self.kick = kick
        self.clock = clock or SystemClock()
        self.policy = settings.backoff
        state_dir = Path(settings.state_dir)
        self.memory = Memory(state_dir, self.clock)
        self.runtimes, self.feed = self.memory.load(settings.device_id)
        self.last_report: Report | None = None
        self.manual_stops = ManualStops(state_dir)
        lookups = lookup_workers or ThreadPerJob("lookup")
        self.observer = Observer(
            settings, engine, self.manual_stops, lookups, kick, self.clock.monotonic
        )
        self.inbox = self.observer.inbox
        workers = step_workers or ThreadPerJob("step")
        self.steps = StepRunner(engine, workers, kick, prepare)
        pulls = pull_workers or Pool("pull", settings.pull_concurrency)
        self.puller = Puller(engine, pulls, kick, self.clock.monotonic)
        self.images = KnownImages(engine, lookups, kick)
        self._lock = threading.Lock()
        self._desired_of: tuple[Target | None, list[DesiredService]] = (None, [])

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Cancel every pull, wait a moment for steps under way; never for a registry."""
        self.puller.close(timeout)
        self.steps.close(timeout)
        self.observer.exits.close(0.0)  # questions to the engine: never waited for

    def request_retry(self, services: Iterable[str]) -> list[str]:
        """Reset the backoff of the named services (all in error when empty) in the next pass,
        which this kicks. Never waits for a running pass (MQTT's network thread calls it)."""
        runtimes = self.runtimes  # replaced whole, never changed in place
        wanted = set(services) or {
            name for name, rt in runtimes.items() if rt.deploy.last or rt.crash.last
        }
        done = sorted(name for name in wanted if name in runtimes)
        self.inbox.retry(set(done))
        self.kick()
        return done

    def note_ack(self, ack: Ack) -> None:
        """A target was answered: a rejection raises the device alert, an acceptance clears
        it, in the pass this kicks."""
        if ack.code != NO_TARGET:
            self.inbox.ack(ack)
        self.kick()

    def engine_lost(self, at: float) -> None:
        """The engine's event stream broke (monotonic `at`): it went away, maybe briefly."""
        self.inbox.engine_lost(at)

    def note_event(self, event: ContainerEvent) -> None:
        self.observer.note_event(event)

    def run_pass(self) -> float:
        """Reconcile once; return the monotonic time at which the next pass is needed."""
        with self._lock:
            now, wall = self.clock.monotonic(), self.clock.wall()
            results = self._masked(self.steps.collect())
            events = self._apply_steps(results, now, wall)
            acked = self._take_acks(wall)
            target = self.target()
            desired = self._desired(target)
            try:
                containers = self.observer.look(self.engine.list_managed(), now)
            except EngineError as exc:
                return self._engine_down(exc, now, wall, acked)
            if target is None:  # "no target": nothing is touched, only reported
                return self._idle(containers, now, wall)
            retries, runtimes = self.observer.take_inbox(now, self.runtimes)
            runtimes = self.observer.sync(desired, containers, runtimes, now, wall)
            self.runtimes = {
                name: retry_now(rt) if name in retries else rt for name, rt in runtimes.items()
            }
            self.puller.cancel_others((s.name, s.config_hash) for s in desired)
            events += self._collect_pulls(now, wall)
            asking = self._find_images(desired, containers, now)
            plan = planner.plan(
                self.settings.device_id,
                desired,
                containers,
                self.runtimes,
                self.puller.under_way() | asking,  # no pull while asking if one is needed
                now,
                self.steps.busy().keys(),
            )
            for pull in plan.pulls:
                self.puller.submit(pull, self.runtimes[pull.service].config_hash)
            self.steps.submit(plan.jobs)
            report = self._report(target, desired, containers, events, now, wall)
            self._publish(report, wall)
            logs.log_pass(report, results, events, plan.pulls)
            self.observer.unobserved = False
            return self._next_wake(now)

    def _desired(self, target: Target | None) -> list[DesiredService]:
        """The target's services with their config hashes, worked out once per target (a
        target is never changed in place: a new one is a new object)."""
        if target is not self._desired_of[0]:
            self._desired_of = (target, desired_services(target))
        return self._desired_of[1]

    def _masked(self, results: list[StepResult]) -> list[StepResult]:
        """An engine message may quote a container's environment: never let it out."""
        desired = self._desired(self.target())
        envs = {s.name: s.service.config.environment.values() for s in desired}
        return [masking.masked_step(result, envs) for result in results]

    def _apply_steps(self, results: list[StepResult], now: float, wall: float) -> list[Event]:
        """Steps that ended since the last pass change their services' histories."""
        events: list[Event] = []
        for result in results:
            name = result.step.service
            if name in self.runtimes:
                runtime = apply_step(self.runtimes[name], result, self.policy, now, wall)
                self.runtimes = {**self.runtimes, name: runtime}
            if isinstance(result.step, planner.Create) and result.error_kind == IMAGE_GONE:
                self.images.gone(result.step.spec.image)  # pulled again in this very pass
            events.append(step_event(self.settings.device_id, result, wall))
        return events

    def _take_acks(self, wall: float) -> bool:
        """Apply the acks sent since the last pass to the device alert; whether any was."""
        acks = self.inbox.take_acks()
        for ack in acks:
            self.feed = feed.with_ack(self.feed, ack, wall)
        return bool(acks)

    def _idle(self, containers: list[Container], now: float, wall: float) -> float:
        """No target: report, and keep what happened for the first pass that has one."""
        # an outage is excused now; retries have nothing to retry
        _, self.runtimes = self.observer.take_inbox(now, self.runtimes)
        report = self._report(None, [], containers, [], now, wall)
        self._publish(replace(report, state=replace(report.state, converged=False)), wall)
        return now + self.settings.reconcile_interval

    def _engine_down(self, exc: EngineError, now: float, wall: float, acked: bool) -> float:
        """An outage costs no service anything: nothing is planned, no retry is counted. A
        list call that only failed or was slow is that call's failure: nothing is forgiven."""
        outage = exc.kind == "unavailable"
        log.warning("docker engine unavailable" if outage else "listing failed", error=exc.message)
        if outage:
            self.runtimes = self.observer.excuse_outage(now, now, self.runtimes)
        report = self.last_report
        if report is None:
            target = self.target()
            report = self._report(target, self._desired(target), [], [], now, wall)
        error = exc.message if outage else report.engine_error
        if report.engine_error != error or acked or self.last_report is None:
            state = replace(report.state, converged=False, updated_at=iso(wall))
            self._publish(replace(report, state=state, events=[], engine_error=error), wall)
        return now + min(ENGINE_DOWN_POLL, self.settings.reconcile_interval)

    def _find_images(
        self, desired: list[DesiredService], containers: list[Container], now: float
    ) -> set[Key]:
        """A service to (re)create whose image is on the device already needs no pull: it is
        replaced in this very pass, so a change shows as one status, not `downloading` first.
        Returns the services whose image the engine is being asked about (they wait)."""
        grouped = planner.by_service(containers)
        under_way = self.puller.under_way()
        self.images.seen(containers)
        ready: dict[str, ServiceRuntime] = {}
        asking: set[Key] = set()
        for service in desired:
            runtime = self.runtimes[service.name]
            key = (service.name, service.config_hash)
            if runtime.image_ready or key in under_way or not runtime.deploy.due(now):
                continue
            if planner.current_container(service, grouped.get(service.name, [])) is not None:
                continue
            present = self.images.present(service.service.image_name)
            if present is None:
                asking.add(key)
            elif present:
                ready[service.name] = replace(runtime, image_ready=True)
        self.runtimes = {**self.runtimes, **ready}
        return asking

    def _collect_pulls(self, now: float, wall: float) -> list[Event]:
        events: list[Event] = []
        for result in self.puller.collect():
            if result.error_kind is None:
                self.images.pulled(result.image)
            elif result.error_kind not in (CANCELLED, "unavailable"):
                self.images.gone(result.image)  # its retry pulls at once (the pull looks first)
            runtime = self.runtimes.get(result.service)
            if runtime is not None and result.error_kind != CANCELLED:
                runtime = apply_pull(runtime, result, self.policy, now, wall)
                self.runtimes = {**self.runtimes, result.service: runtime}
                device = self.settings.device_id
                events.append(pull_event(device, result, runtime, now, wall))
        return events

    def _report(
        self,
        target: Target | None,
        desired: list[DesiredService],
        containers: list[Container],
        events: list[Event],
        now: float,
        wall: float,
    ) -> Report:
        version = target.version if target else None
        ctx = StatusContext(self.settings.device_id, version, self.policy, wall, now)
        runtimes = {s.name: runtime_for(s, self.runtimes.get(s.name)) for s in desired}
        pulling, busy = self.puller.under_way(), self.steps.busy()
        progress = self.puller.progress(now)
        report = build_report(ctx, desired, containers, runtimes, pulling, events, busy, progress)
        # what is under way ends in a pass right after this one: its report replaces this one
        asking = self.observer.reading() or self.images.asking()
        return replace(report, provisional=True) if busy or asking else report

    def _publish(self, report: Report, wall: float) -> None:
        """Complete the report in the core (alerts, their changes, history, state events),
        remember what must survive a restart, and hand the same report to every publisher."""
        self.feed, report = feed.conclude(self.feed, report, wall)
        self.last_report = report
        self.memory.save(self.runtimes, self.feed)
        for publisher in self.publishers:
            try:
                publisher.publish(report)
            except Exception:  # one broken transport must not stop reconciling
                log.exception("publisher failed", publisher=type(publisher).__name__)

    def _next_wake(self, now: float) -> float:
        deadlines = [now + self.settings.reconcile_interval]
        # The engine sends `die` a moment before its list says `exited`; a `die` that did not
        # say its exit code is waited for: look again shortly.
        if self.observer.settling:
            deadlines.append(now + DIE_SETTLE)
        # a deadline that is due now was acted on by this pass (or waits for a busy service,
        # whose end kicks a pass)
        retry = next_retry_after(self.runtimes.values(), now)
        return min([*deadlines, retry] if retry is not None else deadlines)
