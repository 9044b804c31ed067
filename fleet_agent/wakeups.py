"""When reconcile passes run: at the deadline the last pass asked for, and at once when kicked.

One thread of our own runs the passes, so they never overlap, and waits on a condition whose
timeout runs on the monotonic clock: a step of the wall clock (NTP at boot on a device without
an RTC) moves no deadline. The periodic safety-net pass is simply the latest deadline a pass
returns (`run_pass` never asks for more than its interval).

- a kick (a new target, a finished pull or step, an engine event, a command) marks a pass as
  wanted and wakes the thread; kicks during a pass collapse into exactly one more pass;
- `wake_at` books an earlier deadline (never a later one than what is pending);
- a pass that crashes is followed by another within `CRASH_RETRY` seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)
# A pass that crashed booked no deadline: the next one comes this soon, never a whole interval
# later (an engine outage or a retry waiting behind it would otherwise go unseen that long).
CRASH_RETRY = 5.0


class Wakeups:
    def __init__(
        self, run_pass: Callable[[], float], interval: float, monotonic: Callable[[], float]
    ) -> None:
        self.run_pass = run_pass
        self.interval = interval
        self.monotonic = monotonic
        self._cond = threading.Condition()
        self._wanted = True  # the first pass runs at once
        self._due: float | None = None  # the pending deadline, monotonic seconds
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="wakeups", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """No pass starts any more; returns once a running one has ended (or `timeout`)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def kick(self) -> None:
        with self._cond:
            self._wanted = True
            self._cond.notify_all()

    def wake_at(self, at: float) -> None:
        """Book a pass at monotonic time `at` unless an earlier one is pending."""
        with self._cond:
            if self._due is None or at < self._due:
                self._due = at
                self._cond.notify_all()

    def _wait(self) -> bool:
        """Wait until a pass is wanted or due; False once stopping."""
        with self._cond:
            while not self._stopping:
                now = self.monotonic()
                if self._wanted or (self._due is not None and now >= self._due):
                    self._wanted, self._due = False, None
                    return True
                timeout = self.interval if self._due is None else self._due - now
                self._cond.wait(max(0.0, min(timeout, self.interval)))
            return False

    def _loop(self) -> None:
        while self._wait():
            try:
                wake = self.run_pass()
            except Exception:  # the loop must keep running whatever a pass hits
                log.exception("reconcile pass crashed")
                wake = self.monotonic() + min(CRASH_RETRY, self.interval)
            self.wake_at(wake)
