"""Who hears about fleet changes: callbacks, iterators (`ChangeStream`) and one-shot waiters.

The client's dispatcher thread calls `Listeners.publish` for every change; callbacks run on that
thread (guarded: an exception is logged, never raised), streams get the change on a queue of
their own, and waiters (an ack, a command result) resolve once their match returns a value.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import structlog

from fleet_agent.operator.errors import WaitTimeout
from fleet_agent.operator.fleet import Change

log = structlog.get_logger(__name__)
T = TypeVar("T")


class Waiter(Generic[T]):
    """Resolves with the first value `match` returns for a change."""

    def __init__(self, match: Callable[[Change], T | None]) -> None:
        self.match = match
        self._done = threading.Event()
        self._value: T | None = None

    def offer(self, change: Change) -> None:
        if self._done.is_set():
            return
        value = self.match(change)
        if value is not None:
            self._value = value
            self._done.set()

    def wait(self, timeout: float, message: str) -> T:
        if not self._done.wait(timeout) or self._value is None:
            raise WaitTimeout(message)
        return self._value


class ChangeStream:
    """An iterator over changes; ends when closed or when the client closes.

    `get(timeout)` returns the next change or None after `timeout` seconds, for loops that must
    also redraw (countdowns) while nothing arrives."""

    _END: Any = object()

    def __init__(self, owner: Listeners, maxsize: int = 0) -> None:
        self._owner = owner
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self.dropped = 0  # changes lost because a bounded stream was full
        self.closed = False

    def put(self, change: Change) -> None:
        try:
            self._queue.put_nowait(change)
        except queue.Full:
            self.dropped += 1

    def end(self) -> None:
        self.closed = True
        self._queue.put(self._END)

    def get(self, timeout: float | None = None) -> Change | None:
        if self.closed and self._queue.empty():
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is self._END:
            self.closed = True
            return None
        change: Change = item
        return change

    def __iter__(self) -> Iterator[Change]:
        while (change := self.get()) is not None:
            yield change

    def close(self) -> None:
        self._owner.remove(self)
        self.end()

    def __enter__(self) -> ChangeStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Listeners:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Change], None]] = []
        self._streams: list[ChangeStream] = []
        self._waiters: list[Waiter[Any]] = []

    def add(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)
        return lambda: self._remove_callback(callback)

    def _remove_callback(self, callback: Callable[[Change], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def stream(self, maxsize: int = 0) -> ChangeStream:
        stream = ChangeStream(self, maxsize)
        with self._lock:
            self._streams.append(stream)
        return stream

    def remove(self, stream: ChangeStream) -> None:
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)

    def waiter(self, match: Callable[[Change], T | None]) -> Waiter[T]:
        waiter = Waiter(match)
        with self._lock:
            self._waiters.append(waiter)
        return waiter

    def drop(self, waiter: Waiter[Any]) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def publish(self, change: Change) -> None:
        with self._lock:
            callbacks, streams, waiters = (
                list(self._callbacks),
                list(self._streams),
                list(self._waiters),
            )
        for waiter in waiters:
            waiter.offer(change)
        for stream in streams:
            stream.put(change)
        for callback in callbacks:
            try:
                callback(change)
            except Exception:
                log.exception("a change listener failed", listener=repr(callback))

    def close(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.end()
