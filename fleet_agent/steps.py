"""Running the planned steps in the background: each service's steps in order, on their own.

A pass hands each service's steps here and moves on; it never waits for them. A service has
at most one job under way: a slow stop (a container that ignores SIGTERM takes its whole stop
grace) or a hung engine call holds up only that service, never another service's steps or the
status of all. When a job ends, its results wait here and the pass it kicks collects them. The
first failure ends that service's steps only; whatever a step raises comes back as a
`StepResult`, so a pass always learns what happened; a create that finds its image gone says
so (`image_gone`), and the image is pulled again at once instead of counting a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from fleet_agent import planner
from fleet_agent.model import ServiceState
from fleet_agent.outcomes import IMAGE_GONE, StepResult
from fleet_agent.policy import PolicyError
from fleet_agent.ports import EngineAPI, EngineError
from fleet_agent.spec import ContainerSpec
from fleet_agent.workers import Workers

log = structlog.get_logger(__name__)


class StepRunner:
    def __init__(
        self,
        engine: EngineAPI,
        workers: Workers,
        on_done: Callable[[], None],
        prepare: Callable[[ContainerSpec], ContainerSpec] | None = None,
    ) -> None:
        self.engine = engine
        self.prepare = prepare  # `Admission.at_create`: host paths checked again, resolved
        self.workers = workers
        self.on_done = on_done
        self._lock = threading.Lock()
        self._busy: dict[str, ServiceState] = {}  # service -> what its job under way does
        self._done: list[StepResult] = []

    def busy(self) -> dict[str, ServiceState]:
        """Services with a job under way or not yet collected, and the state it stands for."""
        with self._lock:
            return dict(self._busy)

    def submit(self, jobs: dict[str, list[planner.Step]]) -> None:
        for service, steps in jobs.items():
            with self._lock:
                if service in self._busy:
                    continue  # the planner skips busy services; never two jobs for one
                self._busy[service] = _doing(steps)
            self.workers.submit(lambda s=steps: self._finish(self._run_job(s)))  # type: ignore[misc]

    def collect(self) -> list[StepResult]:
        """The results of the jobs that ended since the last call."""
        with self._lock:
            done, self._done = self._done, []
            for result in done:
                self._busy.pop(result.step.service, None)
        return done

    def close(self, timeout: float) -> None:
        self.workers.close(timeout)

    def _finish(self, results: list[StepResult]) -> None:
        with self._lock:
            self._done.extend(results)
        self.on_done()

    def _run_job(self, steps: list[planner.Step]) -> list[StepResult]:
        results: list[StepResult] = []
        for step in steps:
            try:
                self._execute(step)
            except EngineError as exc:
                results.append(StepResult(step, self._kind(step, exc), exc.message))
                break
            except Exception as exc:  # a step thread must always report back
                log.exception("step crashed", service=step.service)
                results.append(StepResult(step, "failed", repr(exc)))
                break
            results.append(StepResult(step))
        return results

    def _kind(self, step: planner.Step, exc: EngineError) -> str:
        """A create that finds no image asks whether the image is really gone (pruned while
        the agent took it as present): that is no failure of the service. Anything else not
        found (a network, say) stays a failure."""
        if isinstance(step, planner.Create) and exc.kind == "not_found":
            try:
                if not self.engine.image_present(step.spec.image):
                    return IMAGE_GONE
            except EngineError:
                pass
        return exc.kind

    def _execute(self, step: planner.Step) -> None:
        if isinstance(step, planner.Create):
            try:
                spec = self.prepare(step.spec) if self.prepare else step.spec
            except PolicyError as exc:  # a StartFailure, retried with the deploy backoff
                raise EngineError("failed", str(exc)) from exc
            self.engine.create(spec)
        elif isinstance(step, planner.Start):
            self.engine.start(step.container)
        elif isinstance(step, planner.Stop):
            self.engine.stop(step.container)
        else:
            self.engine.remove(step.container)


def _doing(steps: list[planner.Step]) -> ServiceState:
    """What a job is seen doing: stopping while it has stops or only removals, else starting."""
    stops = any(isinstance(step, planner.Stop) for step in steps)
    starts = any(isinstance(step, planner.Create | planner.Start) for step in steps)
    return "starting" if starts and not stops else "stopping"
