"""Received targets and commands, handed over by the transports, handled on one worker of ours.

Transports (MQTT's network thread, the target file watcher) only hand over and return at once:
decoding, persisting and acking run here, so a hostile payload or a slow disk never stalls a
network thread. Targets coalesce: only the newest one not yet taken matters, because a newer
target replaces the older one as the retained topic itself does; the ack of the newest answers
the superseded ones too (the retained ack only ever holds the latest answer). A target that
could not be stored (ack 500) is offered again from memory, with a doubling delay, until it is
stored or a newer one arrives. Commands wait in a bounded queue; one that finds it full is
answered at once that it was dropped, so every command still gets its result.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import structlog

from fleet_agent.commands import CommandResult
from fleet_agent.intake import NOT_PERSISTED
from fleet_agent.model import Ack

log = structlog.get_logger(__name__)
MAX_COMMANDS = 100
Respond = Callable[[CommandResult], None]


class Receiver:
    def __init__(
        self,
        offer: Callable[[bytes, str], Ack],
        command: Callable[[str, bytes], CommandResult],
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        max_commands: int = MAX_COMMANDS,
    ) -> None:
        self.offer = offer
        self.execute = command
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self._cond = threading.Condition()
        self._target: tuple[bytes, str] | None = None  # the newest target not taken yet
        self._superseded = 0
        self._commands: deque[tuple[str, bytes, Respond]] = deque()
        self._max_commands = max_commands
        self._retry: tuple[bytes, str] | None = None  # a target not stored yet
        self._retry_at = 0.0
        self._failures = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(10)

    def target(self, payload: bytes, source: str) -> None:
        """Hand over a received target; never blocks for longer than a lock."""
        with self._cond:
            if self._target is not None:
                self._superseded += 1
            self._target = (payload, source)
            self._retry, self._failures = None, 0  # a newer target replaces one not stored
            self._cond.notify()

    def command(self, name: str, payload: bytes, respond: Respond) -> None:
        with self._cond:
            if len(self._commands) < self._max_commands:
                self._commands.append((name, payload, respond))
                self._cond.notify()
                return
        error = f"too many commands waiting (more than {self._max_commands}); dropped"
        respond(CommandResult(name, False, error=error))

    def idle(self) -> bool:
        """Nothing waiting to be handled (a target being retried counts as waiting)."""
        with self._cond:
            return self._target is None and not self._commands and self._retry is None

    def _run(self) -> None:
        while True:
            with self._cond:
                work = self._next()
                while work is None and not self._stopping:
                    self._cond.wait(self._wait_time())
                    work = self._next()
                if work is None:  # stopping
                    return
            try:
                work()
            except Exception:
                log.exception("handling a received input failed")

    def _wait_time(self) -> float | None:
        if self._retry is None:
            return None
        return max(0.0, self._retry_at - time.monotonic())

    def _next(self) -> Callable[[], None] | None:
        """The next piece of work (called with the lock held): targets first."""
        if self._target is not None:
            (payload, source), self._target = self._target, None
            if self._superseded:
                log.info("targets superseded before they were read", count=self._superseded)
                self._superseded = 0
            return lambda: self._take_target(payload, source)
        if self._commands:
            name, payload, respond = self._commands.popleft()
            return lambda: respond(self.execute(name, payload))
        if self._retry is not None and time.monotonic() >= self._retry_at:
            payload, source = self._retry
            return lambda: self._take_target(payload, source)
        return None

    def _take_target(self, payload: bytes, source: str) -> None:
        ack = self.offer(payload, source)
        with self._cond:
            if self._target is not None:  # a newer one arrived meanwhile: it decides
                return
            if ack.code != NOT_PERSISTED:
                self._retry, self._failures = None, 0
                return
            self._failures += 1
            delay = min(self.retry_initial * 2 ** min(self._failures - 1, 30), self.retry_max)
            self._retry, self._retry_at = (payload, source), time.monotonic() + delay
            log.warning("target not stored, retried from memory", in_seconds=delay)
