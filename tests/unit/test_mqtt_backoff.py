"""Reconnect delays: whole seconds, at least 1, doubling up to the cap, and jittered."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from fleet_agent.mqtt import RECONNECT_CAP, reconnect_delay

# attempt -> (lowest, highest) delay: the upper bound min(cap, 2^n), the lower half of it
BOUNDS = {
    0: (1, 1),
    1: (1, 2),
    2: (2, 4),
    3: (4, 8),
    4: (8, 16),
    5: (16, 32),
    6: (30, 60),
    7: (30, 60),
    20: (30, 60),
    10_000: (30, 60),
}


@pytest.fixture(autouse=True)
def seeded() -> Iterator[None]:
    """Deterministic draws, without leaking the seed into other tests."""
    saved = random.getstate()
    random.seed(20251024)
    yield
    random.setstate(saved)


def test_the_default_cap_is_one_minute() -> None:
    assert RECONNECT_CAP == 60.0


@pytest.mark.parametrize("attempt", sorted(BOUNDS))
def test_every_delay_is_a_whole_number_of_seconds_within_the_attempts_bounds(
    attempt: int,
) -> None:
    low, high = BOUNDS[attempt]

    draws = [reconnect_delay(attempt) for _ in range(500)]

    assert all(type(delay) is int for delay in draws)
    assert all(low <= delay <= high for delay in draws), (min(draws), max(draws))
    assert min(draws) >= 1
    assert max(draws) <= RECONNECT_CAP


def test_the_upper_bound_doubles_with_each_attempt_until_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)

    assert [reconnect_delay(n) for n in range(1, 9)] == [2, 4, 8, 16, 32, 60, 60, 60]


def test_the_lower_bound_is_half_the_upper_bound_and_never_below_one_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)

    assert [reconnect_delay(n) for n in range(0, 9)] == [1, 1, 2, 4, 8, 16, 30, 30, 30]


def test_a_smaller_cap_bounds_the_delay_sooner() -> None:
    draws = {n: [reconnect_delay(n, cap=10.0) for _ in range(200)] for n in (3, 4, 9)}

    assert (min(draws[3]), max(draws[3])) == (4, 8)
    assert all(5 <= delay <= 10 for delay in draws[4] + draws[9])
    assert max(draws[9]) == 10


def test_the_delay_is_jittered_rather_than_fixed_for_an_attempt() -> None:
    draws = [reconnect_delay(5) for _ in range(50)]

    assert len(set(draws)) > 1
    assert all(16 <= delay <= 32 for delay in draws)
