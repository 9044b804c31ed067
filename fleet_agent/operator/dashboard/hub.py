"""Fans device changes out to the browsers' event streams, coalesced and with bounded memory.

The client's dispatcher thread says which device changed (`notify`); each subscriber keeps only
the *set* of device ids changed since its last send, never a queue of messages, so a burst of
5,000 retained messages or a slow browser costs at most one id per device. A stream sends at
most one update per `coalesce` seconds holding the current document of each changed device.
"""

from __future__ import annotations

import asyncio
import threading


class Subscriber:
    """One browser's stream: what changed since its last update, and a wake-up."""

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.closed = False

    def take(self) -> set[str]:
        ids, self.dirty = self.dirty, set()
        self.wake.clear()
        return ids


class Hub:
    def __init__(self, max_subscribers: int = 64) -> None:
        self.max_subscribers = max_subscribers
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: set[str] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start handing changes over on `loop` (what came before is in every snapshot)."""
        self._loop = loop
        loop.call_soon_threadsafe(self._hand_over)

    def notify(self, device_id: str) -> None:
        """From any thread: `device_id` changed. Schedules one hand-over per burst."""
        if not device_id:  # a command result that names no device
            return
        with self._lock:
            first = not self._pending
            self._pending.add(device_id)
        loop = self._loop
        if first and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            ids, self._pending = self._pending, set()
        for subscriber in self._subscribers:
            subscriber.dirty |= ids
            subscriber.wake.set()

    def subscribe(self) -> Subscriber | None:
        """A new subscriber, or None when the limit of open streams is reached."""
        if len(self._subscribers) >= self.max_subscribers:
            return None
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        for subscriber in self._subscribers:
            subscriber.closed = True
            subscriber.wake.set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
