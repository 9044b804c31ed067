"""A newly seen exit, end to end through the pure core: what `record_exit` notes, then what the
planner and the status make of it in the same pass (same `now`)."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure
from fleet_agent.model import DesiredService, RestartPolicy
from fleet_agent.planner import Plan, Start, plan
from fleet_agent.runtime import Container, ExitDetails, ServiceRuntime, record_exit
from fleet_agent.status import StatusContext, service_status

from .factories import DEVICE, T0, container, desired, failed, runtime

POLICY = BackoffPolicy(initial=7.0, maximum=300.0, max_retries=10)
NOW = T0 + 100


def exited(svc: DesiredService, exit_code: int = 0) -> Container:
    return container(svc, "c-1", state="exited", exit_code=exit_code)


def plan_at(svc: DesiredService, gone: Container, state: ServiceRuntime, now: float) -> Plan:
    return plan(DEVICE, [svc], [gone], {svc.name: state}, set(), now)


def restart_of(svc: DesiredService) -> dict[str, list[Start]]:
    return {svc.name: [Start(svc.name, "c-1", restart=True)]}


# --- counts=False: noted, free of charge, restarted at once -----------------------------------


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_an_exit_that_does_not_count_is_noted_without_touching_the_crash_backoff(
    policy: RestartPolicy,
) -> None:
    svc = desired(restart=policy)
    before = runtime(svc, started_at=NOW - 60, restart_count=2, image_ready=True)

    after = record_exit(before, exited(svc, 1), ExitDetails(1), policy, POLICY, NOW, counts=False)

    assert after == replace(before, exit_seen="c-1", started_at=None)
    assert after.crash == Backoff()


def test_an_exit_that_does_not_count_keeps_an_earlier_crash_history_exactly_as_it_was() -> None:
    svc = desired(restart="always")
    history = failed([NOW - 300, NOW - 290], "CrashLoopBackOff", "Error: exited 1", POLICY)
    before = runtime(svc, crash=history, started_at=NOW - 200)

    after = record_exit(before, exited(svc), ExitDetails(0), "always", POLICY, NOW, counts=False)

    assert after.crash is history
    assert (after.exit_seen, after.started_at) == ("c-1", None)


def test_an_exit_that_does_not_count_is_restarted_by_the_planner_in_the_same_pass() -> None:
    svc = desired(restart="always")
    gone = exited(svc, 137)

    noted = record_exit(runtime(svc), gone, ExitDetails(137), "always", POLICY, NOW, counts=False)
    result = plan_at(svc, gone, noted, NOW)

    assert result.jobs == restart_of(svc)
    assert result.pulls == []


# --- counts=True: a crash, backed off ------------------------------------------------------------


def test_a_counted_exit_under_always_records_a_crash_loop_failure_retried_after_initial() -> None:
    svc = desired(restart="always")
    before = runtime(svc, started_at=NOW - 5)

    after = record_exit(before, exited(svc, 1), ExitDetails(1), "always", POLICY, NOW)

    assert after == replace(
        before,
        exit_seen="c-1",
        started_at=None,
        crash=Backoff(
            failures=1,
            last=Failure("CrashLoopBackOff", "Error: container exited with code 1", NOW),
            next_retry=NOW + 7.0,
            exhausted=False,
            times=(NOW,),
        ),
    )


def test_a_counted_exit_is_not_restarted_before_its_crash_backoff_is_due() -> None:
    svc = desired(restart="always")
    gone = exited(svc, 1)

    noted = record_exit(runtime(svc), gone, ExitDetails(1), "always", POLICY, NOW)

    assert plan_at(svc, gone, noted, NOW).jobs == {}
    assert plan_at(svc, gone, noted, NOW + 6.999).jobs == {}
    assert plan_at(svc, gone, noted, NOW + 7.0).jobs == restart_of(svc)


# --- stopped by hand -------------------------------------------------------------------------


@pytest.mark.parametrize("counts", [True, False])
def test_a_container_stopped_by_hand_under_unless_stopped_stays_stopped_without_error(
    counts: bool,
) -> None:
    svc = desired(restart="unless-stopped")
    gone = exited(svc, 0)
    before = runtime(svc, stopped_by_user=True, started_at=NOW - 60)

    after = record_exit(before, gone, ExitDetails(0), "unless-stopped", POLICY, NOW, counts)
    result = plan_at(svc, gone, after, NOW)
    shown = service_status(StatusContext(DEVICE, 7, POLICY, NOW), svc, [gone], after, False)

    assert after.crash == Backoff()
    assert result.jobs == {}
    assert result.pulls == []
    assert (shown.service_status, shown.error) == ("stopped", None)
    assert (shown.container_id, shown.running_image, shown.exit_code) == ("c-1", None, 0)


def test_a_container_stopped_by_hand_under_always_is_restarted_at_once_free_of_charge() -> None:
    # The reconciler passes counts=False for a container stopped by hand.
    svc = desired(restart="always")
    gone = exited(svc, 0)
    before = runtime(svc, stopped_by_user=True, started_at=NOW - 60)

    after = record_exit(before, gone, ExitDetails(0), "always", POLICY, NOW, counts=False)
    shown = service_status(StatusContext(DEVICE, 7, POLICY, NOW), svc, [gone], after, False)

    assert after.crash == Backoff()
    assert plan_at(svc, gone, after, NOW).jobs == restart_of(svc)
    assert (shown.service_status, shown.error) == ("starting", None)
