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
    """One failed attempt, already in our own words (the adapter translated the engine's)."""

    type: ErrorType
    message: str
    at: float
    retryable: bool = True


class Backoff(msgspec.Struct, frozen=True):
    """The failure history of one service at one config; `Backoff()` is a clean slate."""

    failures: int = 0
    last: Failure | None = None
    next_retry: float | None = None
    exhausted: bool = False

    def due(self, now: float) -> bool:
        if self.last is None:
            return True
        return self.next_retry is not None and now >= self.next_retry


def record_failure(state: Backoff, policy: BackoffPolicy, failure: Failure) -> Backoff:
    failures = state.failures + 1
    if not failure.retryable:
        return Backoff(failures, failure, None, exhausted=False)
    if failures >= policy.max_retries:
        return Backoff(failures, failure, None, exhausted=True)
    return Backoff(failures, failure, failure.at + policy.delay(failures), exhausted=False)
