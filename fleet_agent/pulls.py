"""Image pulls in the background, so a slow or stalled registry never holds up a pass.

A pass starts a pull and moves on; when the pull ends, its result waits here and the pass it
kicks collects it. At most one pull per service and config is under way; a pull whose config
was replaced is cancelled (its socket closed), so it never holds a slot the new config needs,
and closing cancels every pull, so a shutdown never waits for a registry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import structlog

from fleet_agent.outcomes import CANCELLED, PullResult
from fleet_agent.planner import Pull
from fleet_agent.ports import Cancel, EngineAPI, EngineError
from fleet_agent.workers import Workers

log = structlog.get_logger(__name__)
Key = tuple[str, str]  # (service, config hash)


class Puller:
    def __init__(self, engine: EngineAPI, workers: Workers, on_done: Callable[[], None]) -> None:
        self.engine = engine
        self.workers = workers
        self.on_done = on_done
        self._lock = threading.Lock()
        self._running: dict[Key, Cancel] = {}
        self._done: list[PullResult] = []

    def under_way(self) -> set[Key]:
        """(service, config hash) of every pull not yet collected (cancelled ones too: a
        config that comes back waits for its old pull to let go)."""
        with self._lock:
            return set(self._running)

    def submit(self, pull: Pull, config_hash: str) -> None:
        cancel = Cancel()
        with self._lock:
            self._running[(pull.service, config_hash)] = cancel
        self.workers.submit(lambda: self._finish(self._pull(pull, config_hash, cancel)))

    def cancel_others(self, wanted: Iterable[Key]) -> list[Key]:
        """Cancel every pull for a config no longer wanted; returns those cancelled."""
        keep = set(wanted)
        with self._lock:
            stale = [(k, c) for k, c in self._running.items() if k not in keep and not c.cancelled]
        for key, cancel in stale:
            log.info("pull superseded, cancelled", service=key[0])
            cancel.cancel()
        return [key for key, _ in stale]

    def collect(self) -> list[PullResult]:
        """The results of the pulls that ended since the last call."""
        with self._lock:
            done, self._done = self._done, []
            for result in done:
                self._running.pop((result.service, result.config_hash), None)
        return done

    def close(self, timeout: float) -> None:
        with self._lock:
            cancels = list(self._running.values())
        for cancel in cancels:
            cancel.cancel()
        self.workers.close(timeout)

    def _finish(self, result: PullResult) -> None:
        with self._lock:
            self._done.append(result)
        self.on_done()

    def _pull(self, pull: Pull, config_hash: str, cancel: Cancel) -> PullResult:
        cancelled = PullResult(pull.service, pull.image, config_hash, CANCELLED, "pull cancelled")
        if cancel.cancelled:  # cancelled while it waited for a slot
            return cancelled
        try:
            self.engine.ensure_image(pull.image, cancel)
        except EngineError as exc:
            if cancel.cancelled:
                return cancelled
            return PullResult(pull.service, pull.image, config_hash, exc.kind, exc.message)
        except Exception as exc:  # a pull thread must always report back
            log.exception("pull crashed", service=pull.service)
            return PullResult(pull.service, pull.image, config_hash, "failed", repr(exc))
        return PullResult(pull.service, pull.image, config_hash)
