"""Retry policy: the exact schedule, exhaustion, non-retryable failures and `due()`."""

from __future__ import annotations

import pytest

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure, record_failure

from .factories import T0, failed


def pull_failure(at: float) -> Failure:
    return Failure("ImagePullBackOff", "manifest unknown", at)


def test_default_policy_is_10_seconds_doubling_up_to_300_with_10_retries() -> None:
    assert BackoffPolicy() == BackoffPolicy(initial=10.0, maximum=300.0, max_retries=10)


def test_default_delays_after_failures_1_to_9_double_from_10_and_cap_at_300() -> None:
    delays = [BackoffPolicy().delay(n) for n in range(1, 10)]

    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0, 300.0]


def test_each_failure_schedules_the_next_retry_at_its_own_time_plus_the_delay() -> None:
    policy = BackoffPolicy()
    state = Backoff()
    seen = []
    at = T0
    for _ in range(9):
        state = record_failure(state, policy, pull_failure(at))
        seen.append((state.failures, state.next_retry, state.exhausted))
        assert state.next_retry is not None
        at = state.next_retry + 0.5  # each retry fails half a second late

    assert seen == [
        (1, T0 + 10, False),
        (2, T0 + 10.5 + 20, False),
        (3, T0 + 31 + 40, False),
        (4, T0 + 71.5 + 80, False),
        (5, T0 + 152 + 160, False),
        (6, T0 + 312.5 + 300, False),
        (7, T0 + 613 + 300, False),
        (8, T0 + 913.5 + 300, False),
        (9, T0 + 1214 + 300, False),
    ]


def test_the_tenth_failure_exhausts_the_budget_and_schedules_no_retry() -> None:
    state = failed([T0 + n for n in range(9)])
    assert not state.exhausted

    state = record_failure(state, BackoffPolicy(), pull_failure(T0 + 1000))

    assert state.failures == 10
    assert state.exhausted is True
    assert state.next_retry is None
    assert state.last == pull_failure(T0 + 1000)


def test_an_exhausted_backoff_is_never_due() -> None:
    state = failed([T0 + n for n in range(10)])

    assert state.due(T0 + 10**9) is False


def test_a_non_retryable_failure_schedules_no_retry_and_is_not_exhausted() -> None:
    invalid = Failure("InvalidImageName", "invalid reference format", T0, retryable=False)

    state = record_failure(Backoff(), BackoffPolicy(), invalid)

    assert state == Backoff(failures=1, last=invalid, next_retry=None, exhausted=False, times=(T0,))
    assert state.due(T0 + 10**9) is False


def test_a_non_retryable_failure_after_retryable_ones_keeps_counting() -> None:
    invalid = Failure("InvalidImageName", "invalid reference format", T0 + 100, retryable=False)

    state = record_failure(failed([T0, T0 + 10]), BackoffPolicy(), invalid)

    assert (state.failures, state.next_retry, state.exhausted) == (3, None, False)


def test_a_clean_slate_is_due_at_any_time() -> None:
    assert Backoff().due(0.0) is True


def test_a_scheduled_retry_is_due_exactly_from_its_deadline_on() -> None:
    state = failed([T0])  # next retry at T0 + 10

    assert state.due(T0 + 9.999) is False
    assert state.due(T0 + 10) is True
    assert state.due(T0 + 11) is True


def test_after_a_reset_the_schedule_starts_again_from_the_initial_delay() -> None:
    before = failed([T0 + n for n in range(6)])
    assert before.failures == 6

    state = record_failure(Backoff(), BackoffPolicy(), pull_failure(T0 + 500))

    assert (state.failures, state.next_retry, state.exhausted) == (1, T0 + 510, False)


def test_a_compressed_policy_scales_every_delay_and_the_cap() -> None:
    policy = BackoffPolicy(initial=0.125, maximum=1.0, max_retries=10)

    assert [policy.delay(n) for n in range(1, 10)] == [
        0.125,
        0.25,
        0.5,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
    ]


def test_a_compressed_policy_of_a_tenth_of_a_second_schedules_sub_second_retries() -> None:
    policy = BackoffPolicy(initial=0.1, maximum=3.0, max_retries=10)
    state = Backoff()
    deadlines = []
    for at in (100.0, 101.0, 102.0, 103.0, 104.0, 105.0):
        state = record_failure(state, policy, pull_failure(at))
        deadlines.append(state.next_retry)

    assert deadlines == pytest.approx([100.1, 101.2, 102.4, 103.8, 105.6, 108.0], abs=1e-9)


def test_a_small_retry_budget_exhausts_on_its_last_attempt() -> None:
    policy = BackoffPolicy(initial=0.1, maximum=3.0, max_retries=3)

    second = failed([1.0, 2.0], policy=policy)
    third = failed([1.0, 2.0, 3.0], policy=policy)

    assert second.exhausted is False
    assert second.next_retry == pytest.approx(2.2, abs=1e-9)
    assert (third.exhausted, third.next_retry, third.failures) == (True, None, 3)
