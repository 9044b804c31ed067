"""Where background work runs: the `Workers` interface and its two thread-backed kinds.

Steps and pulls hand their work here and never wait for it; each piece reports back through
its own callback. `ThreadPerJob` gives every job a thread of its own (steps: at most one job
per service at a time, so one hung engine call holds up only its own service). `Pool` bounds
how many run at once (pulls). A unit test hands in its own `Workers` that runs jobs when told.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)
IDLE_EXIT = 30.0  # seconds a pool thread waits for work before it ends


class Workers(Protocol):
    def submit(self, job: Callable[[], None]) -> None: ...

    def close(self, timeout: float) -> None:
        """Start nothing more; wait at most `timeout` seconds for what runs."""
        ...


class ThreadPerJob:
    def __init__(self, name: str) -> None:
        self.name = name
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            thread = threading.Thread(target=self._run, args=(job,), name=self.name, daemon=True)
            self._threads.add(thread)
        thread.start()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def close(self, timeout: float) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:  # daemon threads: what is still hung ends with the process
            thread.join(max(0.0, deadline - time.monotonic()))


class Pool:
    """At most `size` jobs at once, on daemon threads (a hung one never blocks an exit). A
    thread starts when a job finds none free and ends after `idle_exit` seconds without work:
    an agent that is not pulling keeps none (a fleet of agents on one machine would keep
    thousands)."""

    def __init__(self, name: str, size: int, idle_exit: float = IDLE_EXIT) -> None:
        self.name, self.size, self.idle_exit = name, size, idle_exit
        self._cond = threading.Condition()
        self._jobs: deque[Callable[[], None]] = deque()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for a job
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            self._jobs.append(job)
            self._cond.notify()
            if len(self._jobs) <= self._idle or len(self._threads) >= self.size:
                return
            thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._threads.add(thread)
        thread.start()

    def _next(self) -> Callable[[], None] | None:
        """The next job, or None when closed or idle for `idle_exit` (the thread ends)."""
        with self._cond:
            while not self._jobs and not self._closed:
                self._idle += 1
                woken = self._cond.wait(self.idle_exit)
                self._idle -= 1
                if not woken and not self._jobs:
                    break
            if self._closed or not self._jobs:
                self._threads.discard(threading.current_thread())
                return None
            return self._jobs.popleft()

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                job()
            except Exception:  # a worker must outlive any job
                log.exception("background job crashed")

    def close(self, timeout: float) -> None:
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
