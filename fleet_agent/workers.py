"""Where background work runs: the `Workers` interface and its two thread-backed kinds.

Steps and pulls hand their work here and never wait for it; each piece reports back through
its own callback. `ThreadPerJob` gives every job a thread of its own (steps: at most one job
per service at a time, so one hung engine call holds up only its own service). `Pool` bounds
how many run at once (pulls). A unit test hands in its own `Workers` that runs jobs when told.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


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
    """At most `size` jobs at once, on daemon threads (a hung one never blocks an exit)."""

    def __init__(self, name: str, size: int) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        if not self._closed.is_set():
            self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not self._closed.is_set():
                try:
                    job()
                except Exception:  # a worker must outlive any job
                    log.exception("background job crashed")

    def close(self, timeout: float) -> None:
        self._closed.set()
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
