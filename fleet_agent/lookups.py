"""Engine questions a pass needs answered, asked in the background so no pass waits for one.

Why a container exited, whether an image is on the device: each is one engine call, which can
hang up to the API timeout. A pass asks here and moves on; the question runs on its own worker,
its answer waits here, and the pass its end kicks takes it. So a hung call holds up only what
it is about, never another service's steps or the status of all. One question per key is
under way at a time. Workers that run a job as it is handed (unit tests) answer at once, in the
same pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

import structlog

from fleet_agent.ports import EngineError
from fleet_agent.workers import Workers

log = structlog.get_logger(__name__)
K = TypeVar("K")
V = TypeVar("V")


class Lookups(Generic[K, V]):
    def __init__(self, workers: Workers, on_done: Callable[[], None]) -> None:
        self.workers = workers
        self.on_done = on_done
        self._lock = threading.Lock()
        self._asking: set[K] = set()
        self._answers: dict[K, V | EngineError] = {}

    def ask(self, key: K, call: Callable[[], V]) -> V | EngineError | None:
        """The answer about `key` if it came back (it is taken: the next ask asks again);
        otherwise None, and `call` runs in the background unless it is under way already."""
        self.prefetch(key, call)
        with self._lock:
            return self._answers.pop(key, None)

    def prefetch(self, key: K, call: Callable[[], V]) -> None:
        """Start asking now (unless under way or answered): the pass that asks later finds
        the answer, or its end kicks that pass."""
        with self._lock:
            if key in self._answers or key in self._asking:
                return
            self._asking.add(key)
        self.workers.submit(lambda: self._answer(key, call))

    def under_way(self) -> bool:
        with self._lock:
            return bool(self._asking)

    def keep_only(self, keys: Collection[K]) -> None:
        """Drop the answers about anything not given (a container that is gone)."""
        with self._lock:
            self._answers = {k: v for k, v in self._answers.items() if k in keys}

    def close(self, timeout: float) -> None:
        self.workers.close(timeout)

    def _answer(self, key: K, call: Callable[[], V]) -> None:
        answer: V | EngineError
        try:
            answer = call()
        except EngineError as exc:
            answer = exc
        except Exception as exc:  # a lookup must always answer, or its key stays asked
            log.exception("engine lookup crashed")
            answer = EngineError("failed", repr(exc))
        with self._lock:
            self._asking.discard(key)
            self._answers[key] = answer
        self.on_done()
