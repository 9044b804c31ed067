"""When passes run: a recording pass on the wake-up thread (no engine, no broker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fleet_agent.wakeups import CRASH_RETRY, Wakeups

LONG = 300.0  # the periodic pass never fires during a test


class Passes:
    """Records each pass (monotonic time); the first one can be held open to kick during it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started: list[float] = []
        self.hold = threading.Event()
        self.hold.set()
        self.next_wake = clock() + LONG

    def __call__(self) -> float:
        self.started.append(self.clock())
        self.hold.wait(10)
        return self.next_wake

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.started) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.started) >= count, self.started


@pytest.fixture
def wiring() -> Iterator[tuple[Wakeups, Passes]]:
    passes = Passes()
    wakeups = Wakeups(passes, LONG, time.monotonic)
    wakeups.start()
    passes.wait_for(1)  # the first pass runs at once
    yield wakeups, passes
    wakeups.stop()


def test_a_burst_of_kicks_during_a_pass_runs_exactly_one_more_pass(
    wiring: tuple[Wakeups, Passes],
) -> None:
    wakeups, passes = wiring
    passes.hold.clear()
    wakeups.kick()
    passes.wait_for(2)
    for _ in range(20):
        wakeups.kick()
    passes.hold.set()

    passes.wait_for(3)
    time.sleep(0.5)
    assert len(passes.started) == 3


def test_a_kick_right_after_a_wake_up_fired_is_never_lost(
    wiring: tuple[Wakeups, Passes],
) -> None:
    wakeups, passes = wiring
    for _ in range(30):
        before = len(passes.started)
        wakeups.kick()
        wakeups.kick()  # may find the first wake-up pending or already firing
        passes.wait_for(before + 1)
    assert len(passes.started) >= 31


def test_a_retry_deadline_wakes_a_pass_at_its_time(wiring: tuple[Wakeups, Passes]) -> None:
    wakeups, passes = wiring
    due = time.monotonic() + 0.3

    wakeups.wake_at(due)

    passes.wait_for(2)
    assert passes.started[1] >= due


def test_an_earlier_wake_up_replaces_a_later_one_and_the_later_still_comes() -> None:
    """On a clock the test moves (the thread reads it again at least every interval), so a
    slow thread on a loaded machine can never make the early pass look late."""
    now = [1000.0]
    passes = Passes(lambda: now[0])
    wakeups = Wakeups(passes, 0.02, lambda: now[0])
    wakeups.start()
    try:
        passes.wait_for(1)
        later = now[0] + 60
        passes.next_wake = later  # each pass asks again for the later deadline
        wakeups.wake_at(later)
        wakeups.wake_at(now[0] + 10)

        now[0] += 10
        passes.wait_for(2)
        now[0] = later - 1
        time.sleep(0.1)  # a pass before `later` would be a bug; none is due here
        now[0] = later
        passes.wait_for(3)
    finally:
        wakeups.stop()
    assert passes.started[1:3] == [1010.0, later]  # then `later` stays due: passes go on


def test_passes_never_overlap_and_a_stop_waits_for_the_running_one() -> None:
    passes = Passes()
    passes.hold.clear()
    wakeups = Wakeups(passes, LONG, time.monotonic)
    wakeups.start()
    passes.wait_for(1)
    wakeups.kick()
    stopper = threading.Thread(target=wakeups.stop)
    stopper.start()
    time.sleep(0.2)
    alive_while_held = stopper.is_alive()
    passes.hold.set()
    stopper.join(5)

    assert alive_while_held
    assert len(passes.started) == 1  # the kick during the pass never ran: stopping


def test_periodic_passes_come_once_per_interval_not_twice() -> None:
    """A pass with nothing due asks to be woken one interval later, as the reconciler does;
    that deadline is the periodic pass itself, not a second pass beside it."""
    interval = 0.5
    started: list[float] = []

    def run_pass() -> float:
        started.append(time.monotonic())
        return time.monotonic() + interval

    wakeups = Wakeups(run_pass, interval, time.monotonic)
    wakeups.start()
    try:
        time.sleep(4 * interval + 0.2)  # periodic passes at 0, 1, 2, 3 and 4 intervals
    finally:
        wakeups.stop()
    assert 1 <= len(started) <= 5, [round(t - started[0], 2) for t in started]


def test_a_pass_that_crashes_is_followed_by_another_within_seconds_not_an_interval() -> None:
    started: list[float] = []

    def crashing() -> float:
        started.append(time.monotonic())
        if len(started) == 1:
            raise RuntimeError("a bug in the pass")
        return time.monotonic() + LONG

    wakeups = Wakeups(crashing, LONG, time.monotonic)
    wakeups.start()
    try:
        deadline = time.monotonic() + 10 * CRASH_RETRY
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        wakeups.stop()
    assert len(started) == 2, "no pass after the crash"
    assert started[1] - started[0] < LONG / 2
