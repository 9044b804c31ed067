"""Image pulls in the background, so a slow or stalled registry never holds up a pass.

A pass starts a pull and moves on; when the pull ends, its result waits here and the pass it
kicks collects it. At most one pull per service and config is under way; a pull whose config
was replaced is cancelled (its socket closed), so it never holds a slot the new config needs,
and closing cancels every pull, so a shutdown never waits for a registry.

While a pull runs, its progress is kept behind a `ProgressGate` (at most one new value a second,
only on change) and a pass is kicked when a new value is due; a pull that ends lets its last
progress (100%) be shown by a pass before its result is handed over (when it showed any).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import structlog

from fleet_agent.model import Progress
from fleet_agent.outcomes import CANCELLED, PullResult
from fleet_agent.planner import Pull
from fleet_agent.ports import Cancel, EngineAPI, EngineError, PullProgress
from fleet_agent.pull_progress import ProgressGate
from fleet_agent.workers import Workers

log = structlog.get_logger(__name__)
Key = tuple[str, str]  # (service, config hash)
LAST_SHOWN_WAIT = 3.0  # at most this long a finished pull waits for its 100% to be shown


class Puller:
    def __init__(
        self,
        engine: EngineAPI,
        workers: Workers,
        on_done: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.workers = workers
        self.on_done = on_done
        self.clock = clock  # the clock of the `now` that `progress(now)` is given
        self._lock = threading.Lock()
        self._running: dict[Key, Cancel] = {}
        self._done: list[PullResult] = []
        self._gates: dict[Key, ProgressGate] = {}
        self._shown: dict[Key, threading.Event] = {}  # set once a pass took the latest value

    def under_way(self) -> set[Key]:
        """(service, config hash) of every pull not yet collected (cancelled ones too: a
        config that comes back waits for its old pull to let go)."""
        with self._lock:
            return set(self._running)

    def submit(self, pull: Pull, config_hash: str) -> None:
        cancel = Cancel()
        key = (pull.service, config_hash)
        with self._lock:
            self._running[key] = cancel
            self._gates[key] = ProgressGate()
            self._shown[key] = threading.Event()
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
                key = (result.service, result.config_hash)
                self._running.pop(key, None)
                self._gates.pop(key, None)
                self._shown.pop(key, None)
        return done

    def progress(self, now: float) -> dict[Key, Progress]:
        """What each pull under way shows at `now` (a pass's time: its statuses' `updatedAt`)."""
        shown: dict[Key, Progress] = {}
        with self._lock:
            for key, gate in self._gates.items():
                value = gate.show(now)
                if value is not None:
                    shown[key] = value
                if not gate.pending():
                    self._shown[key].set()
        return shown

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

    def _on_progress(self, key: Key, progress: PullProgress) -> None:
        """From the pull's thread: keep the value; kick a pass when a new one is due."""
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                return
            gate.offer(progress, self.clock())
            pending = gate.pending()
            if pending:
                self._shown[key].clear()
            due = pending and gate.due_in(self.clock()) == 0
        if due:
            self.on_done()

    def _show_last(self, key: Key, cancel: Cancel) -> None:
        """Before a pull's result is handed over: let a pass show its last progress (100%),
        within the gate's interval, so the percentages a status showed end where the pull did."""
        with self._lock:
            gate, shown = self._gates.get(key), self._shown.get(key)
        if gate is None or shown is None or gate.shown_at is None:
            return  # nothing was shown (a pull under a second): nothing to end at 100
        stop = threading.Event()
        forget = cancel.on_cancel(stop.set)
        deadline = time.monotonic() + LAST_SHOWN_WAIT
        try:
            while not shown.is_set() and time.monotonic() < deadline and not stop.is_set():
                with self._lock:
                    wait = gate.due_in(self.clock())
                if wait > 0 and stop.wait(wait):
                    return
                self.on_done()  # a pass, which takes the last value
                shown.wait(0.25)
        finally:
            forget()

    def _pull(self, pull: Pull, config_hash: str, cancel: Cancel) -> PullResult:
        cancelled = PullResult(pull.service, pull.image, config_hash, CANCELLED, "pull cancelled")
        if cancel.cancelled:  # cancelled while it waited for a slot
            return cancelled
        key = (pull.service, config_hash)
        try:
            self.engine.ensure_image(pull.image, cancel, lambda p: self._on_progress(key, p))
            self._show_last(key, cancel)
        except EngineError as exc:
            if cancel.cancelled:
                return cancelled
            return PullResult(pull.service, pull.image, config_hash, exc.kind, exc.message)
        except Exception as exc:  # a pull thread must always report back
            log.exception("pull crashed", service=pull.service)
            return PullResult(pull.service, pull.image, config_hash, "failed", repr(exc))
        return PullResult(pull.service, pull.image, config_hash)
