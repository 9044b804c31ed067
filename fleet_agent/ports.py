"""The small interfaces the reconciler works through: the engine, the clocks, a cancel token.

The reconciler, its pulls and its steps call the engine only through `EngineAPI`, in our own
types (`Container`, `ContainerSpec`, `ExitDetails`, `EngineError`), never the Docker SDK's. The
Docker adapter (`engine.py`) satisfies it, and so can a simulated engine or a unit test's fake,
which can then inject any failure. Time comes through `Clock`: monotonic seconds for every
deadline, wall time only for the timestamps people read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple, Protocol

import msgspec

from fleet_agent.runtime import Container, ExitDetails
from fleet_agent.spec import ContainerSpec

# not_found: no such image, manifest or container; invalid_reference: a name the engine refuses;
# unavailable: the engine cannot be reached (an outage); timeout: one call took too long (a
# failure of that call, not an outage); conflict: a name or state clash; failed: anything else.
ErrorKind = Literal[
    "not_found", "invalid_reference", "unavailable", "timeout", "conflict", "failed"
]


class EngineError(Exception):
    """Every failure of an engine call, with a kind the reconciler acts on and the engine's
    own message (`manifest unknown`)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message


class ContainerEvent(NamedTuple):
    action: str  # the engine's action: start, die, stop, kill, destroy, ... or "connected"
    container: str
    by_agent: bool  # the agent itself stopped or removed this container
    exit_code: int | None = None  # a `die` event's: the engine says it with the event

    @property
    def manual_stop(self) -> bool:
        """Someone stopped the container through the engine (not the agent, not its own exit)."""
        return self.action in ("stop", "kill") and not self.by_agent


class PullProgress(msgspec.Struct, frozen=True):
    """How far a pull has come (`bytes_total` None while the engine has not said)."""

    bytes_done: int
    bytes_total: int | None = None


class Cancel:
    """A cancel token: set once, seen by whoever polls it, and calls what was registered (an
    engine closes a pull's socket with it, so even a read that is stuck ends at once)."""

    def __init__(self) -> None:
        self._set = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._set.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._set.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when cancelled (at once if already); returns an unregister."""
        with self._lock:
            if not self._set.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


class EngineAPI(Protocol):
    """What the agent asks of a container engine. Every method raises only `EngineError`."""

    def ping(self) -> None: ...

    def list_managed(self) -> list[Container]:
        """This device's containers (labelled with its device id), in one call."""
        ...

    def image_present(self, image: str) -> bool:
        """Whether a pinned image is on the device (a floating tag never is: it is pulled
        again for every new container)."""
        ...

    def ensure_image(
        self,
        image: str,
        cancel: Cancel,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        """Make the image present: pull unless present (a floating tag is always pulled).
        Ends with `EngineError("timeout", ...)` soon after `cancel` is cancelled."""
        ...

    def create(self, spec: ContainerSpec) -> str:
        """Create the container (never started); returns its id."""
        ...

    def start(self, container: str) -> None: ...

    def stop(self, container: str) -> None:
        """Stop with the engine's stop grace; the event it makes is marked `by_agent`."""
        ...

    def remove(self, container: str) -> None:
        """Remove, forced, with its anonymous volumes; marked `by_agent` as `stop`."""
        ...

    def exit_details(self, container: str) -> ExitDetails:
        """Why a container stopped: exit code, OOM kill, its last lines of output."""
        ...

    def events(self) -> Iterator[ContainerEvent]:
        """This device's container events, first `connected`, until the stream breaks."""
        ...

    def close_events(self) -> None:
        """End a running `events()` from another thread."""
        ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds that only ever grow at the pace of real time: for every deadline."""
        ...

    def wall(self) -> float:
        """Epoch seconds, for published timestamps only (NTP may step it)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()
