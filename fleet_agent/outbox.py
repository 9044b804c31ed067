"""What the MQTT link still has to deliver, so that no latest value of a retained topic is lost.

Retained topics keep only their latest payload: a newer value replaces an older one that is not
delivered yet, so memory is bounded by the number of topics of ours (a few per service). A value
leaves the outbox only once the broker acknowledged it (PUBACK); one that paho refused (its
queue full, no connection) stays pending and is offered again. Events and replies (not retained)
wait in a bounded queue that drops its oldest entry when full. A window bounds how many messages
are handed to paho at once, so paho's own queue never overflows in normal operation.

The `Outbox` is pure data behind a lock; the `Sender` is the MQTT link's thread that takes
batches, hands them to paho through a callable (so this module needs no paho) and reports back
(`sent`, `refused`, `acked`). PUBACKs reach it through a lock-free queue: paho calls
`on_publish` while holding a lock of its own that `publish` also takes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)
SEND_RETRY = 0.5  # seconds before what paho refused is offered again

WINDOW = 100  # messages handed to paho and not acknowledged yet
MAX_MESSAGES = 1000  # events and replies waiting while the link is down


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    properties: Any = None  # paho Properties of a reply (correlation data), else None


@dataclass
class _Retained:
    payload: bytes
    mid: int | None = None  # handed to paho as this message id; None: still to hand over


class Outbox:
    def __init__(self, window: int = WINDOW, max_messages: int = MAX_MESSAGES) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._retained: dict[str, _Retained] = {}  # insertion order is the sending order
        self._messages: deque[Message] = deque(maxlen=max_messages)
        self._inflight: dict[int, Message] = {}  # mid -> what paho is delivering
        self.dropped = 0  # events and replies dropped because the queue was full

    def put(self, topic: str, payload: bytes) -> None:
        """The latest value of a retained topic; replaces any older one still to deliver."""
        with self._lock:
            self._retained.pop(topic, None)  # to the end: sent after what was already waiting
            self._retained[topic] = _Retained(payload)

    def put_message(self, message: Message) -> None:
        with self._lock:
            if len(self._messages) == self._messages.maxlen:
                self.dropped += 1
            self._messages.append(message)

    def take(self) -> list[Message]:
        """What may be handed to paho now (at most the free part of the window)."""
        with self._lock:
            free = self.window - len(self._inflight)
            batch: list[Message] = []
            for topic, entry in self._retained.items():
                if len(batch) >= free:
                    return batch
                if entry.mid is None:
                    batch.append(Message(topic, entry.payload, True))
            while self._messages and len(batch) < free:
                batch.append(self._messages.popleft())
            return batch

    def sent(self, message: Message, mid: int) -> None:
        """paho took it (queued or on the wire) as `mid`; delivered once acknowledged."""
        with self._lock:
            self._inflight[mid] = message
            entry = self._retained.get(message.topic) if message.retain else None
            if entry is not None and entry.mid is None and entry.payload == message.payload:
                entry.mid = mid

    def refused(self, message: Message) -> None:
        """paho did not take it: a retained value stays pending; an event goes back in front."""
        if not message.retain:
            with self._lock:
                self._messages.appendleft(message)

    def acked(self, mid: int) -> None:
        """The broker acknowledged `mid`: a retained value still the latest is delivered."""
        with self._lock:
            message = self._inflight.pop(mid, None)
            if message is None or not message.retain:
                return
            entry = self._retained.get(message.topic)
            if entry is not None and entry.mid == mid:
                del self._retained[message.topic]

    def reconnected(self) -> None:
        """A new connection: forget what paho had in flight (it may resend some itself); every
        retained value not acknowledged is handed over again."""
        with self._lock:
            self._inflight.clear()
            for entry in self._retained.values():
                entry.mid = None

    def pending(self) -> int:
        """Retained values and messages not delivered yet."""
        with self._lock:
            return len(self._retained) + len(self._messages)


class Sender:
    """The thread that hands the outbox to paho while connected."""

    def __init__(
        self,
        outbox: Outbox,
        publish: Callable[[Message], int | None],  # the mid, or None when refused
        connected: Callable[[], bool],
    ) -> None:
        self.outbox = outbox
        self.publish = publish
        self.connected = connected
        self._acked: deque[int] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._refused = False  # the last batch was not all taken: offered again soon
        self._thread = threading.Thread(target=self._run, name="mqtt-send", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def wake(self) -> None:
        self._wake.set()

    def acked(self, mid: int) -> None:
        """From paho's thread: only a deque append and an event, never our lock."""
        self._acked.append(mid)
        self._wake.set()

    def _run(self) -> None:
        """Sleeps until woken (a new value, an ack, a connect); only what paho refused, or
        what waits for a link that is down, makes it look again every `SEND_RETRY` seconds:
        an idle agent's sender costs nothing (a fleet of them on one machine would)."""
        again = False
        while not self._stopping:
            self._wake.wait(SEND_RETRY if again else None)
            self._wake.clear()
            again = True
            try:
                self._take_acks()
                while self.connected() and self._flush():
                    self._take_acks()
                again = self._refused or (not self.connected() and self.outbox.pending() > 0)
            except Exception:
                log.exception("MQTT sender failed")

    def _flush(self) -> bool:
        """Offer one batch; whether all of it was taken and more may follow."""
        batch = self.outbox.take()
        self._refused = False
        for message in batch:
            mid = self.publish(message)
            if mid is None:
                self.outbox.refused(message)
                self._refused = True
                return False
            self.outbox.sent(message, mid)
        return bool(batch)

    def _take_acks(self) -> None:
        while self._acked:
            self.outbox.acked(self._acked.popleft())
