"""Running the planned steps: each service's steps in order, services side by side.

The first failure ends that service's steps only; every other service goes on. Whatever a step
raises comes back as a `StepResult`, so a pass always learns what happened.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import structlog

from fleet_agent import planner
from fleet_agent.outcomes import StepResult
from fleet_agent.ports import EngineAPI, EngineError

log = structlog.get_logger(__name__)


class StepRunner:
    def __init__(self, engine: EngineAPI, workers: int) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(workers, "step")

    def run(self, jobs: dict[str, list[planner.Step]]) -> list[StepResult]:
        futures = [self._pool.submit(self._run_job, steps) for steps in jobs.values()]
        return [result for future in futures for result in future.result()]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _run_job(self, steps: list[planner.Step]) -> list[StepResult]:
        results: list[StepResult] = []
        for step in steps:
            try:
                self._execute(step)
            except EngineError as exc:
                results.append(StepResult(step, exc.kind, exc.message))
                break
            except Exception as exc:  # a step thread must always report back
                log.exception("step crashed", service=step.service)
                results.append(StepResult(step, "failed", repr(exc)))
                break
            results.append(StepResult(step))
        return results

    def _execute(self, step: planner.Step) -> None:
        if isinstance(step, planner.Create):
            self.engine.create(step.spec)
        elif isinstance(step, planner.Start):
            self.engine.start(step.container)
        elif isinstance(step, planner.Stop):
            self.engine.stop(step.container)
        else:
            self.engine.remove(step.container)
