"""Exponential retry policy as pure data: when a failed service may be tried again.

The delay after failure n is `min(initial * 2^(n-1), max)`; after `max_retries` failures the
service is exhausted and waits for a target change or a retry command. Deadlines are stored
here, in our own data, so the scheduler only has to wake the reconciler at the earliest one.
"""

from __future__ import annotations

import msgspec

from fleet_agent.model import ErrorType


class BackoffPolicy(msgspec.Struct, frozen=True):
    initial: float = 10.0
    maximum: float = 300.0
    max_retries: int = 10

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure (1-based)."""
        exponent = min(failures - 1, 62)  # any more only overflows; the cap has long applied
        return float(min(self.initial * 2**exponent, self.maximum))


class Failure(msgspec.Struct, frozen=True):
    """One failed attempt, already in our own words (the adapter translated the engine's).

    `at` is monotonic (every deadline is computed from it); `wall` is the wall time it
    happened, only for the timestamps people read (None: `at` is wall time too, as in tests).
    """

    type: ErrorType
    message: str
    at: float
    retryable: bool = True
    wall: float | None = None


class Backoff(msgspec.Struct, frozen=True):
    """The failure history of one service at one config; `Backoff()` is a clean slate."""

    failures: int = 0
    last: Failure | None = None
    next_retry: float | None = None  # monotonic
    exhausted: bool = False
    times: tuple[float, ...] = ()  # when each counted failure happened (monotonic), bounded

    def due(self, now: float) -> bool:
        if self.last is None:
            return True
        return self.next_retry is not None and now >= self.next_retry


def record_failure(state: Backoff, policy: BackoffPolicy, failure: Failure) -> Backoff:
    failures = state.failures + 1
    times = (*state.times, failure.at)[-policy.max_retries :]
    if not failure.retryable:
        return Backoff(failures, failure, None, False, times)
    if failures >= policy.max_retries:
        return Backoff(failures, failure, None, True, times)
    return Backoff(failures, failure, failure.at + policy.delay(failures), False, times)


def forgive_since(state: Backoff, since: float, now: float) -> Backoff:
    """Uncount the failures from `since` on (an engine outage caused them), and only those:
    what failed before keeps its count, and the service may try again at once."""
    excused = sum(1 for at in state.times if at >= since)
    if excused == 0:
        return state
    if excused >= state.failures:
        return Backoff()
    kept = state.times[: len(state.times) - excused]
    return Backoff(state.failures - excused, state.last, now, False, kept)


CLOCK_STEP = 1.0  # a change of wall minus monotonic beyond this is a step of the wall clock


def to_wall(at: float, last: Failure | None, now: float, wall: float) -> float:
    """Monotonic `at` as wall time, for people. The offset the failure was stamped with is
    kept while the clocks agree (a timestamp never flickers between passes); after a step of
    the wall clock the current offset holds."""
    offset = wall - now
    if last is not None and last.wall is not None:
        then = last.wall - last.at
        if abs(then - offset) <= CLOCK_STEP:
            offset = then
    return at + offset
