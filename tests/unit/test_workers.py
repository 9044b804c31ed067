"""The pull pool starts threads only when jobs need them, never more than its size, and lets
them end when work stops: an agent that is not pulling holds no pool thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fleet_agent.workers import Pool


def _threads(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == name and t.is_alive())


def _until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_pool_starts_no_thread_before_work_and_never_more_than_its_size() -> None:
    pool = Pool("pool-size", 2)
    assert _threads("pool-size") == 0
    release, ran = threading.Event(), []

    def job(n: int) -> None:
        release.wait(10)
        ran.append(n)

    for n in range(5):
        pool.submit(lambda n=n: job(n))  # type: ignore[misc]
    assert _until(lambda: _threads("pool-size") == 2)
    time.sleep(0.1)
    assert _threads("pool-size") == 2
    release.set()
    assert _until(lambda: len(ran) == 5)
    assert sorted(ran) == [0, 1, 2, 3, 4]
    pool.close(5)
    assert _until(lambda: _threads("pool-size") == 0)


def test_idle_pool_threads_end_and_a_later_job_still_runs() -> None:
    pool = Pool("pool-idle", 3, idle_exit=0.1)
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(5)
    assert _until(lambda: _threads("pool-idle") == 0)
    again = threading.Event()
    pool.submit(again.set)
    assert again.wait(5)
    pool.close(5)


def test_a_closed_pool_runs_nothing_more() -> None:
    pool = Pool("pool-closed", 1)
    pool.close(1)
    ran = threading.Event()
    pool.submit(ran.set)
    assert not ran.wait(0.2)
    assert _threads("pool-closed") == 0
