"""A container's `die` event is believed before the engine's list catches up with it.

dockerd sends `die` (with the exit code) some ms before its list stops showing the container
running. The pass that the event kicks shows the service exited with that code, and why it
exited is asked as the event comes. The event stays a hint: the list is believed again once it
agrees, the container starts again, its exit is recorded, or the hint is old.
"""

from __future__ import annotations

from pathlib import Path

from fleet_agent.observe import DIE_SETTLE_MAX
from fleet_agent.ports import ContainerEvent

from .fake_engine import FakeEngine
from .scenario import Held, Scenario

IMG = "reg.local/app:1"
BACKOFF = 11.0  # past the scenario's first crash backoff (10 s)


def running_service(tmp_path: Path, restart: str, held: Held | None = None) -> Scenario:
    s = Scenario(tmp_path, FakeEngine({IMG}), lookup_workers=held)
    s.want(("app", IMG, restart))
    s.settle()
    if held is not None:
        held.release()  # the image question
        s.settle()
    assert s.status("app").service_status == "running"
    return s


def died(s: Scenario, code: int | None, by_agent: bool = False) -> str:
    cid = s.engine.of("app").id
    s.reconciler.note_event(ContainerEvent("die", cid, by_agent, code))
    return cid


def starts(s: Scenario) -> int:
    return sum(1 for call, _ in s.engine.calls if call == "start")


def test_a_died_container_still_listed_running_is_reported_exited_with_the_events_code(
    tmp_path: Path,
) -> None:
    held = Held()
    s = running_service(tmp_path, "no", held)
    died(s, 3)  # the engine's list still says running

    s.run()

    status = s.status("app")
    assert (status.service_status, status.exit_code) == ("exited", 3)
    assert not s.report.provisional  # no restart follows: nothing more to wait for


def test_why_a_container_exited_is_asked_as_its_die_event_comes_before_any_pass(
    tmp_path: Path,
) -> None:
    held = Held()
    s = running_service(tmp_path, "no", held)
    cid = died(s, 3)
    s.engine.exit("app", 3)

    held.release()  # no pass ran since the event

    assert ("inspect", cid) in s.engine.calls
    s.settle()
    assert s.status("app").exit_code == 3
    assert s.reconciler.runtimes["app"].exit_seen == cid


def test_a_die_the_agent_caused_asks_nothing(tmp_path: Path) -> None:
    held = Held()
    s = running_service(tmp_path, "no", held)
    died(s, 143, by_agent=True)

    assert held.jobs == []


def test_under_a_restart_policy_the_report_waits_for_why_the_container_exited(
    tmp_path: Path,
) -> None:
    held = Held()
    s = running_service(tmp_path, "always", held)
    died(s, 3)
    s.run()
    assert s.report.provisional  # the crash history it records is what the status shows

    s.engine.exit("app", 3)
    held.release()
    s.settle()

    error = s.status("app").error
    assert error is not None and error.type == "CrashLoopBackOff"
    assert not s.report.provisional


def test_a_die_that_comes_after_its_exit_was_recorded_leaves_the_restarted_container_running(
    tmp_path: Path,
) -> None:
    s = running_service(tmp_path, "always")
    s.engine.exit("app", 3)
    s.settle()  # the list said exited (no event yet): recorded, restarted after its backoff
    s.clock.advance(BACKOFF)
    s.settle()
    assert starts(s) == 2
    died(s, 3)  # the first exit's event, late

    s.settle()

    assert s.status("app").service_status == "running"
    assert starts(s) == 2


def test_a_start_event_ends_what_the_die_event_said(tmp_path: Path) -> None:
    held = Held()
    s = running_service(tmp_path, "no", held)
    cid = died(s, 3)
    s.reconciler.note_event(ContainerEvent("start", cid, by_agent=False))

    s.run()

    assert s.status("app").service_status == "running"


def test_a_list_that_keeps_saying_running_is_believed_once_the_die_is_old(
    tmp_path: Path,
) -> None:
    held = Held()
    s = running_service(tmp_path, "no", held)
    died(s, 3)
    s.run()
    assert s.status("app").service_status == "exited"

    s.clock.advance(DIE_SETTLE_MAX + 0.1)
    s.run()

    assert s.status("app").service_status == "running"


def test_a_die_without_an_exit_code_waits_for_the_list_and_looks_again_soon(
    tmp_path: Path,
) -> None:
    held = Held()
    s = running_service(tmp_path, "no", held)
    died(s, None)

    wake = s.run()

    assert s.status("app").service_status == "running"
    assert wake - s.clock.monotonic() < 1.0
