"""A reconciler wired to the fake engine and clock, with jobs run when submitted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet_agent.config import Settings
from fleet_agent.model import Ack, AlertChange, ServiceStatus, Target
from fleet_agent.reconciler import Reconciler
from fleet_agent.report import Report
from fleet_agent.workers import Workers

from .factories import DEVICE, service, target
from .fake_engine import FakeClock, FakeEngine


class Inline:
    """Runs each job as it is submitted (its end kicks the next pass, as threads would)."""

    def submit(self, job: Callable[[], None]) -> None:
        job()

    def close(self, timeout: float) -> None:
        pass


class Held:
    """Workers that run a job only when told (a question to the engine under way)."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def close(self, timeout: float) -> None:
        pass

    def release(self) -> None:
        """Run the jobs handed in so far."""
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()


class Recorder:
    def __init__(self) -> None:
        self.reports: list[Report] = []

    def publish(self, report: Report) -> None:
        self.reports.append(report)

    def ack(self, ack: Ack) -> None:
        pass


class Scenario:
    def __init__(
        self,
        state_dir: Path,
        engine: FakeEngine | None = None,
        clock: FakeClock | None = None,
        step_workers: Workers | None = None,
        pull_workers: Workers | None = None,
        lookup_workers: Workers | None = None,
        **settings: Any,
    ) -> None:
        values: dict[str, Any] = {
            "device_id": DEVICE,
            "state_dir": str(state_dir),
            "mqtt_url": "none",
            "backoff_initial": 10.0,
            "max_retries": 3,
        }
        self.settings = Settings(**(values | settings))
        self.engine = engine or FakeEngine()
        self.clock = clock or FakeClock()
        self.recorder = Recorder()
        self.kicks = 0
        self.target: Target | None = None
        self.reconciler = Reconciler(
            self.settings,
            self.engine,
            lambda: self.target,
            [self.recorder],
            self._kick,
            self.clock,
            step_workers or Inline(),
            pull_workers or Inline(),
            lookup_workers or Inline(),
        )
        self.wakes: list[float] = []

    def _kick(self) -> None:
        self.kicks += 1

    def want(self, *specs: tuple[str, str, str], version: int = 1) -> None:
        """Services as (name, image, restart policy)."""
        self.target = target(
            *(
                service(name, image, n + 1, restart=restart, network_mode="none")
                for n, (name, image, restart) in enumerate(specs)
            ),
            version=version,
        )

    def run(self) -> float:
        self.kicks = 0
        wake = self.reconciler.run_pass()
        self.wakes.append(wake)
        return wake

    def settle(self, limit: int = 10) -> float:
        """Run passes as long as the last one kicked (a job or pull ended)."""
        wake = self.run()
        for _ in range(limit):
            if not self.kicks:
                return wake
            wake = self.run()
        raise AssertionError("passes kept kicking")

    @property
    def report(self) -> Report:
        return self.recorder.reports[-1]

    def status(self, name: str) -> ServiceStatus:
        return next(s for s in self.report.services if s.service_name == name)

    def changes(self) -> list[AlertChange]:
        return [c for r in self.recorder.reports for c in r.alert_changes]
