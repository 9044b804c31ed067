"""When reconcile passes run: periodically, at retry deadlines, and at once when kicked.

APScheduler runs the periodic pass (the safety net) and one-shot wake-up jobs, each with an id of
its own, so the scheduler never reschedules or removes a wake-up someone still counts on. Which
wake-up is pending, and whether a pass is wanted, live in our own data:

- a kick (a new target, a finished pull, an engine event, a command) marks a pass as wanted and
  books a wake-up now; a retry deadline books one at its time and marks it wanted when it fires;
- passes never overlap (a lock); a wake-up that finds no pass wanted any more (one that ran
  meanwhile saw everything) does nothing, so a burst of kicks costs one or two passes, not one
  each, and no kick is ever lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import threading
from collections.abc import Callable

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = structlog.get_logger(__name__)
OVERDUE = 1.0  # seconds after which a pending wake-up that has not run is booked again


def _moment(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, dt.UTC)


class Wakeups:
    def __init__(
        self,
        scheduler: BackgroundScheduler,
        run_pass: Callable[[], float],
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.scheduler = scheduler
        self.run_pass = run_pass
        self.interval = interval
        self.clock = clock
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._pass_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the pending wake-up below
        self._pending: tuple[float, str] | None = None  # (time, job id) not yet woken
        self._ids = itertools.count()

    def start(self) -> None:
        self.scheduler.add_job(
            self._woken,
            IntervalTrigger(seconds=self.interval),
            args=[None],
            id="reconcile",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=_moment(self.clock()),
        )

    def stop(self) -> None:
        """No pass starts any more; returns once a running one has ended."""
        self._stopping.set()
        with self._pass_lock:
            pass

    def kick(self) -> None:
        self._wanted.set()
        self.wake_at(self.clock())

    def wake_at(self, at: float) -> None:
        """Book a wake-up at `at` unless an earlier one is still pending."""
        with self._lock:
            if self._stopping.is_set():
                return
            if self._pending is not None:
                overdue = self._pending[0] < self.clock() - OVERDUE  # its job never ran
                if self._pending[0] <= at and not overdue:
                    return
                with contextlib.suppress(JobLookupError):
                    self.scheduler.remove_job(self._pending[1])
            job_id = f"wake-{next(self._ids)}"
            self._pending = (at, job_id)
            self.scheduler.add_job(
                self._woken,
                DateTrigger(run_date=_moment(at)),
                args=[job_id],
                id=job_id,
                misfire_grace_time=None,
            )

    def _woken(self, job_id: str | None) -> None:
        """A wake-up fired (or the periodic job, `job_id` None): a pass is wanted now."""
        with self._lock:
            if self._pending is not None and self._pending[1] == job_id:
                self._pending = None
        self._wanted.set()
        self._pass()

    def _pass(self) -> None:
        """Run a pass if one is wanted; while one runs, leave the wish for it to pick up
        (no scheduler thread ever waits for a pass to end)."""
        if not self._pass_lock.acquire(blocking=False):
            return  # the running pass books a wake-up for the wish when it ends
        try:
            if self._stopping.is_set() or not self._wanted.is_set():
                return  # a pass that started after this was asked for has seen it all
            self._wanted.clear()
            try:
                wake = self.run_pass()
            except Exception:  # the scheduler must keep running whatever a pass hits
                log.exception("reconcile pass crashed")
                wake = self.clock() + self.interval
        finally:
            self._pass_lock.release()
        self.wake_at(self.clock() if self._wanted.is_set() else wake)
