"""The reconciler's scenarios against a fake engine that injects failures (injected clocks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet_agent.ports import ContainerEvent
from fleet_agent.workers import Pool, ThreadPerJob

from .fake_engine import FakeEngine
from .scenario import Scenario

IMG = "reg.local/app:1"
IMG2 = "reg.local/app:2"


def crash_looping(tmp_path: Path, restart: str = "always") -> Scenario:
    """`app` runs and exits with code 1 right after every start; three retries allowed."""
    s = Scenario(tmp_path, FakeEngine({IMG}))
    s.engine.crashing["app"] = 1
    s.want(("app", IMG, restart))
    s.settle()
    return s


def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition never held")


def starts(s: Scenario) -> int:
    return sum(1 for call, _ in s.engine.calls if call == "start")


def retry_due(s: Scenario) -> None:
    """Move the clocks to the service's next retry and run what it starts."""
    s.clock.advance(s.wakes[-1] - s.clock.mono)
    s.settle()


def test_a_crash_loop_counts_each_exit_restarts_between_and_ends_exhausted(
    tmp_path: Path,
) -> None:
    s = crash_looping(tmp_path)
    first = s.status("app")
    retry_due(s)
    retry_due(s)
    last = s.status("app")

    assert first.error is not None and first.error.type == "CrashLoopBackOff"
    assert first.error.retry_count == 1
    assert last.error is not None
    assert (last.error.retry_count, last.error.exhausted, last.error.next_retry) == (3, True, None)
    assert last.restart_count == 2
    assert [(c.event, c.alert.type) for c in s.changes()] == [
        ("raised", "CrashLoopBackOff"),
        ("escalated", "MaxRetriesExceeded"),
    ]


def test_an_exhausted_service_is_restarted_at_once_by_a_retry_command(tmp_path: Path) -> None:
    s = crash_looping(tmp_path)
    retry_due(s)
    retry_due(s)
    before = starts(s)

    assert s.reconciler.request_retry(["app"]) == ["app"]
    s.settle()

    assert starts(s) == before + 1
    error = s.status("app").error
    assert error is not None and (error.retry_count, error.exhausted) == (1, False)


def test_each_pass_asks_to_be_woken_at_the_next_retry_deadline(tmp_path: Path) -> None:
    s = crash_looping(tmp_path)
    failed_at = s.clock.mono

    assert s.wakes[-1] == failed_at + 10
    retry_due(s)
    assert s.wakes[-1] == failed_at + 10 + 20


def test_a_step_of_the_wall_clock_moves_no_retry(tmp_path: Path) -> None:
    s = crash_looping(tmp_path)
    due = s.wakes[-1]
    before = starts(s)

    s.clock.step_wall(3600.0)  # NTP at boot: an hour ahead
    s.clock.advance(5.0)
    early = s.settle()
    s.clock.step_wall(-7200.0)  # and back
    s.clock.advance(due - s.clock.mono)
    s.settle()

    assert early == due
    assert starts(s) == before + 1


def test_a_published_next_retry_follows_the_wall_clock_after_it_stepped(tmp_path: Path) -> None:
    s = crash_looping(tmp_path)
    error = s.status("app").error
    s.clock.step_wall(3600.0)
    s.run()
    stepped = s.status("app").error

    assert error is not None and stepped is not None
    assert error.next_retry == "2025-10-24T10:15:10.000Z"
    assert stepped.next_retry == "2025-10-24T11:15:10.000Z"


def test_an_outage_forgives_only_the_failure_it_caused(tmp_path: Path) -> None:
    s = crash_looping(tmp_path)
    retry_due(s)  # a second crash, counted
    s.clock.advance(s.wakes[-1] - s.clock.mono)
    s.run()  # the third restart; the exit it makes is counted in the next pass
    s.run()
    s.reconciler.engine_lost(s.clock.mono + 1)  # the engine went away right after

    s.run()

    error = s.status("app").error
    assert error is not None
    assert (error.retry_count, error.exhausted) == (2, False)


def test_a_slow_list_call_is_no_outage_and_forgives_nothing(tmp_path: Path) -> None:
    s = crash_looping(tmp_path)
    retry_due(s)
    s.engine.slow_list = True
    s.run()
    s.engine.slow_list = False
    s.run()

    error = s.status("app").error
    assert error is not None and error.retry_count == 2
    assert s.report.engine_error is None
    assert "_agent" not in s.report.alerts


def stopped_by_hand(tmp_path: Path, restart: str, code: int = 137) -> Scenario:
    s = Scenario(tmp_path, FakeEngine({IMG}))
    s.want(("app", IMG, restart))
    s.settle()
    cid = s.engine.of("app").id
    s.reconciler.note_event(ContainerEvent("kill", cid, by_agent=False))
    s.engine.exit("app", code)
    s.reconciler.note_event(ContainerEvent("stop", cid, by_agent=False))
    s.settle()
    return s


@pytest.mark.parametrize("restart", ["unless-stopped", "on-failure", "no"])
def test_a_stop_by_hand_is_respected_and_never_counted(tmp_path: Path, restart: str) -> None:
    s = stopped_by_hand(tmp_path, restart)

    status = s.status("app")
    assert (status.service_status, status.restart_count, status.error) == ("stopped", 0, None)
    assert starts(s) == 1


def test_under_always_a_stop_by_hand_is_restarted_at_once_and_not_counted(tmp_path: Path) -> None:
    s = stopped_by_hand(tmp_path, "always")

    status = s.status("app")
    assert (status.service_status, status.error) == ("running", None)
    assert starts(s) == 2


def test_a_stop_by_hand_seconds_before_an_outage_is_still_respected(tmp_path: Path) -> None:
    s = stopped_by_hand(tmp_path, "unless-stopped")
    s.clock.advance(10.0)
    s.reconciler.engine_lost(s.clock.mono)

    s.settle()

    assert s.status("app").service_status == "stopped"
    assert starts(s) == 1


def test_a_stop_in_the_engines_own_shutdown_is_forgiven(tmp_path: Path) -> None:
    s = stopped_by_hand(tmp_path, "unless-stopped")
    s.clock.advance(1.0)
    s.reconciler.engine_lost(s.clock.mono)  # the stream broke right after the stop

    s.settle()

    assert s.status("app").service_status == "running"


def test_a_superseded_stalled_pull_is_cancelled_and_frees_its_slot(tmp_path: Path) -> None:
    pool = Pool("pull", 1)
    s = Scenario(tmp_path, FakeEngine(), pull_workers=pool)
    s.engine.stalling.add(IMG)
    s.engine.registry.add(IMG2)
    s.want(("app", IMG, "always"))
    s.run()
    wait_until(lambda: s.engine.pulls == [IMG])  # the pool thread has taken it: it stalls
    s.want(("app", IMG2, "always"), version=2)

    s.run()  # cancels the stalled pull; the new config's pull waits for the only slot
    wait_until(lambda: IMG2 in s.engine.images)
    s.settle()

    assert s.engine.pulls == [IMG, IMG2]
    assert s.status("app").service_status == "running"
    pool.close(1)


def test_closing_cancels_a_stalled_pull_at_once(tmp_path: Path) -> None:
    pool = Pool("pull", 1)
    s = Scenario(tmp_path, FakeEngine(), pull_workers=pool)
    s.engine.stalling.add(IMG)
    s.want(("app", IMG, "always"))
    s.run()
    while not s.engine.pulls:
        threading.Event().wait(0.01)

    s.reconciler.close(timeout=10)

    assert not any(t.is_alive() for t in pool._threads)


def test_a_hung_stop_of_one_service_holds_up_no_other_service(tmp_path: Path) -> None:
    s = Scenario(tmp_path, FakeEngine({IMG}), step_workers=ThreadPerJob("step"))
    ended = threading.Event()
    s.reconciler.steps.on_done = ended.set
    s.want(("old", IMG, "always"))
    s.run()
    s.run()
    assert ended.wait(10)
    s.run()
    s.engine.hung_stops["old"] = threading.Event()
    s.want(("new", IMG, "always"), version=2)  # `old` leaves: stopped, which hangs

    ended.clear()
    s.run()  # the pull of `new`; the stop of `old` starts and hangs
    s.run()
    assert ended.wait(10)  # the new service's job ends while the stop still hangs
    s.run()

    assert s.status("new").service_status == "running"
    assert s.engine.of("old").state == "running"
    assert ("stop", s.engine.of("old").id) in s.engine.calls
    s.engine.hung_stops["old"].set()
    s.reconciler.close()


def test_a_service_whose_stop_is_under_way_is_reported_stopping(tmp_path: Path) -> None:
    s = Scenario(tmp_path, FakeEngine({IMG}), step_workers=ThreadPerJob("step"))
    ended = threading.Event()
    s.reconciler.steps.on_done = ended.set
    s.want(("app", IMG, "always"))
    s.run()
    s.run()
    assert ended.wait(10)
    s.run()
    s.engine.hung_stops["app"] = threading.Event()
    s.want(("app", IMG, "no"), version=2)  # a new config: the old container is replaced

    s.run()  # its image is checked first (download, then kill)
    s.run()

    assert s.status("app").service_status == "stopping"
    s.engine.hung_stops["app"].set()
    s.reconciler.close()


def test_a_restarted_agent_keeps_restart_count_history_and_alert(tmp_path: Path) -> None:
    s = crash_looping(tmp_path)
    retry_due(s)
    before = s.status("app")
    history = s.report.history["app"]
    raised = s.report.alerts["app"].raised_at

    again = Scenario(tmp_path, s.engine, s.clock)
    again.target = s.target
    again.run()

    status = again.status("app")
    assert status.restart_count == before.restart_count == 1
    assert status.error is not None and before.error is not None
    assert status.error.retry_count == before.error.retry_count == 2
    assert again.report.history["app"][: len(history)] == history
    assert again.report.alerts["app"].raised_at == raised
    assert again.changes() == []  # nothing raised anew
