"""Image pulls in the background, so a slow or stalled registry never holds up a pass.

A pass starts a pull and moves on; when the pull ends, its result waits here and the pass it
kicks collects it. At most one pull per service and config is under way, and the pool bounds
how many run at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import structlog

from fleet_agent.outcomes import PullResult
from fleet_agent.planner import Pull
from fleet_agent.ports import Cancel, EngineAPI, EngineError

log = structlog.get_logger(__name__)


class Puller:
    def __init__(self, engine: EngineAPI, workers: int, on_done: Callable[[], None]) -> None:
        self.engine = engine
        self.on_done = on_done
        self._pool = ThreadPoolExecutor(workers, "pull")
        self._running: dict[tuple[str, str], Future[PullResult]] = {}  # by (service, hash)
        self._cancels: dict[tuple[str, str], Cancel] = {}
        self._lock = threading.Lock()

    def under_way(self) -> set[tuple[str, str]]:
        """(service, config hash) of every pull still running; an abandoned config's pull
        finishes on its own and never holds up the pull of the service's new config."""
        return set(self._running)

    def submit(self, pull: Pull, config_hash: str) -> None:
        cancel = Cancel()
        with self._lock:
            self._cancels[(pull.service, config_hash)] = cancel
        future = self._pool.submit(self._pull, pull, config_hash, cancel)
        self._running[(pull.service, config_hash)] = future
        future.add_done_callback(lambda _: self.on_done())

    def collect(self) -> list[PullResult]:
        """The results of the pulls that ended since the last call."""
        done = [key for key, future in self._running.items() if future.done()]
        with self._lock:
            for key in done:
                self._cancels.pop(key, None)
        return [self._running.pop(key).result() for key in done]

    def close(self) -> None:
        with self._lock:
            cancels = list(self._cancels.values())
        for cancel in cancels:
            cancel.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _pull(self, pull: Pull, config_hash: str, cancel: Cancel) -> PullResult:
        try:
            self.engine.ensure_image(pull.image, cancel)
        except EngineError as exc:
            return PullResult(pull.service, pull.image, config_hash, exc.kind, exc.message)
        except Exception as exc:  # a pull thread must always report back
            log.exception("pull crashed", service=pull.service)
            return PullResult(pull.service, pull.image, config_hash, "failed", repr(exc))
        return PullResult(pull.service, pull.image, config_hash)
