"""How pull and step results change a service's history, and the events they make."""

from __future__ import annotations

from msgspec.structs import replace

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure
from fleet_agent.model import Event
from fleet_agent.outcomes import (
    IMAGE_GONE,
    PullResult,
    StepResult,
    apply_pull,
    apply_step,
    pull_event,
    step_action,
    step_event,
)
from fleet_agent.planner import Create, Remove, Start, Stop
from fleet_agent.spec import build_spec

from .factories import DEVICE, T0, desired, failed, runtime

POLICY = BackoffPolicy()
SVC = desired()
NAME = f"fleet.{DEVICE}.nodered"


def pull_result(
    error_kind: str | None = None, message: str = "", config_hash: str = ""
) -> PullResult:
    return PullResult(
        "nodered", SVC.service.image_name, config_hash or SVC.config_hash, error_kind, message
    )


# --- pulls -----------------------------------------------------------------------------------


def test_a_successful_pull_makes_the_image_ready() -> None:
    after = apply_pull(runtime(SVC), pull_result(), POLICY, T0)

    assert after.image_ready is True
    assert after.deploy == Backoff()


def test_a_failed_pull_records_an_image_pull_backoff_with_its_next_retry() -> None:
    after = apply_pull(runtime(SVC), pull_result("not_found", "manifest unknown"), POLICY, T0)

    assert after.deploy == Backoff(
        failures=1,
        last=Failure("ImagePullBackOff", "manifest unknown", T0),
        next_retry=T0 + 10,
        exhausted=False,
        times=(T0,),
    )
    assert after.image_ready is False


def test_a_pull_that_times_out_or_fails_otherwise_is_also_backed_off() -> None:
    after = apply_pull(runtime(SVC), pull_result("timeout", "pull did not finish"), POLICY, T0)

    assert after.deploy.last == Failure("ImagePullBackOff", "pull did not finish", T0)
    assert after.deploy.next_retry == T0 + 10


def test_repeated_pull_failures_follow_the_schedule_and_exhaust_on_the_tenth() -> None:
    state = runtime(SVC)
    at = T0
    for _ in range(9):
        state = apply_pull(state, pull_result("not_found", "manifest unknown"), POLICY, at)
        assert state.deploy.next_retry is not None
        at = state.deploy.next_retry
    assert (state.deploy.failures, state.deploy.exhausted) == (9, False)
    assert at == T0 + 10 + 20 + 40 + 80 + 160 + 300 + 300 + 300 + 300

    state = apply_pull(state, pull_result("not_found", "manifest unknown"), POLICY, at)

    assert (state.deploy.failures, state.deploy.exhausted, state.deploy.next_retry) == (
        10,
        True,
        None,
    )


def test_an_invalid_reference_pull_records_invalid_image_name_and_is_never_retried() -> None:
    message = "invalid reference format"

    after = apply_pull(runtime(SVC), pull_result("invalid_reference", message), POLICY, T0)

    assert after.deploy == Backoff(
        failures=1,
        last=Failure("InvalidImageName", message, T0, retryable=False),
        next_retry=None,
        exhausted=False,
        times=(T0,),
    )
    assert after.deploy.due(T0 + 10**6) is False


def test_an_unavailable_engine_during_a_pull_costs_no_retry_budget() -> None:
    before = runtime(SVC, deploy=failed([T0, T0 + 10]))

    after = apply_pull(before, pull_result("unavailable", "engine unreachable"), POLICY, T0 + 30)

    assert after == before


def test_a_pull_result_for_an_old_config_hash_is_ignored() -> None:
    before = runtime(SVC)

    failed_old = apply_pull(before, pull_result("not_found", "x", config_hash="old"), POLICY, T0)
    succeeded_old = apply_pull(before, pull_result(config_hash="old"), POLICY, T0)

    assert failed_old == before
    assert succeeded_old == before
    assert succeeded_old.image_ready is False


# --- steps -----------------------------------------------------------------------------------


def test_a_successful_start_resets_the_deploy_backoff_and_marks_the_start() -> None:
    before = runtime(SVC, deploy=failed([T0, T0 + 10, T0 + 30]), image_ready=True, exit_seen="x")

    after = apply_step(before, StepResult(Start("nodered", NAME)), POLICY, T0 + 100)

    assert after.deploy == Backoff()
    assert after.started_at == T0 + 100
    assert after.exit_seen is None
    assert after.restart_count == 0


def test_a_successful_restart_counts_a_restart_and_keeps_the_crash_history() -> None:
    crash = failed([T0], kind="CrashLoopBackOff")
    before = runtime(SVC, crash=crash, restart_count=2, exit_seen="c-1")

    after = apply_step(before, StepResult(Start("nodered", "c-1", restart=True)), POLICY, T0 + 10)

    assert after.restart_count == 3
    assert after.started_at == T0 + 10
    assert after.exit_seen is None
    assert after.crash == crash


def test_successful_create_stop_and_remove_change_nothing() -> None:
    before = runtime(SVC, deploy=failed([T0]), image_ready=True)
    spec = build_spec(DEVICE, SVC)

    for step in (Create("nodered", spec), Stop("nodered", "c-1"), Remove("nodered", "c-1")):
        assert apply_step(before, StepResult(step), POLICY, T0 + 50) == before


def test_a_failed_create_records_a_start_failure_and_keeps_the_image_ready() -> None:
    before = runtime(SVC, image_ready=True)
    result = StepResult(Create("nodered", build_spec(DEVICE, SVC)), "conflict", "name in use")

    after = apply_step(before, result, POLICY, T0)

    failure = Failure("StartFailure", "name in use", T0)
    assert after.deploy == Backoff(1, failure, T0 + 10, False, (T0,))
    assert after.image_ready is True


def test_a_create_that_finds_its_image_gone_counts_nothing_and_makes_it_be_pulled_again() -> None:
    before = runtime(SVC, image_ready=True)
    result = StepResult(Create("nodered", build_spec(DEVICE, SVC)), IMAGE_GONE, "No such image")

    after = apply_step(before, result, POLICY, T0)

    assert after == replace(before, image_ready=False)


def test_a_create_that_finds_something_else_missing_is_a_start_failure() -> None:
    before = runtime(SVC, image_ready=True)
    result = StepResult(Create("nodered", build_spec(DEVICE, SVC)), "not_found", "no network x")

    after = apply_step(before, result, POLICY, T0)

    assert after.deploy.last == Failure("StartFailure", "no network x", T0)


def test_a_failed_start_records_a_start_failure() -> None:
    result = StepResult(Start("nodered", NAME), "failed", "port is already allocated")

    after = apply_step(runtime(SVC, image_ready=True), result, POLICY, T0)

    assert after.deploy.last == Failure("StartFailure", "port is already allocated", T0)
    assert after.deploy.next_retry == T0 + 10
    assert after.image_ready is True


def test_a_failed_restart_feeds_the_crash_backoff_not_the_deploy_backoff() -> None:
    result = StepResult(Start("nodered", "c-1", restart=True), "failed", "boom")

    after = apply_step(runtime(SVC), result, POLICY, T0)

    assert after.crash == Backoff(
        1, Failure("CrashLoopBackOff", "restart failed: boom", T0), T0 + 10, False, (T0,)
    )
    assert after.deploy == Backoff()


def test_an_unavailable_engine_during_a_step_costs_no_retry_budget() -> None:
    before = runtime(SVC, image_ready=True)

    for step in (
        Create("nodered", build_spec(DEVICE, SVC)),
        Start("nodered", NAME),
        Start("nodered", "c-1", restart=True),
    ):
        assert apply_step(before, StepResult(step, "unavailable", "down"), POLICY, T0) == before


def test_failed_stops_and_removes_cost_no_retry_budget() -> None:
    before = runtime(SVC)

    for step in (Stop("nodered", "c-1"), Remove("nodered", "c-1")):
        assert apply_step(before, StepResult(step, "failed", "busy"), POLICY, T0) == before


def test_a_step_result_is_ok_only_without_an_error_kind() -> None:
    assert StepResult(Stop("nodered", "c-1")).ok is True
    assert StepResult(Stop("nodered", "c-1"), "failed").ok is False


# --- events ----------------------------------------------------------------------------------


def test_step_actions_are_named_after_the_step_with_restart_apart() -> None:
    assert step_action(Create("nodered", build_spec(DEVICE, SVC))) == "create"
    assert step_action(Start("nodered", NAME)) == "start"
    assert step_action(Start("nodered", "c-1", restart=True)) == "restart"
    assert step_action(Stop("nodered", "c-1")) == "stop"
    assert step_action(Remove("nodered", "c-1")) == "remove"


def test_a_successful_step_event_describes_the_action_and_its_subject() -> None:
    full_id = "ab" * 32

    event = step_event(DEVICE, StepResult(Stop("nodered", full_id)), T0 + 0.25)

    assert event == Event(
        device_id=DEVICE,
        type="stop",
        timestamp="2025-10-24T10:15:00.250Z",
        service="nodered",
        ok=True,
        message="stop abababababab",
    )


def test_a_failed_step_event_carries_the_engine_message() -> None:
    result = StepResult(Start("nodered", NAME), "failed", "port is already allocated")

    event = step_event(DEVICE, result, T0)

    assert (event.type, event.ok, event.message) == ("start", False, "port is already allocated")


def test_a_failed_pull_event_is_an_err_image_pull_with_the_retry_schedule() -> None:
    result = pull_result("not_found", "manifest unknown")
    after = apply_pull(runtime(SVC), result, POLICY, T0)

    event = pull_event(DEVICE, result, after, T0)

    assert event == Event(
        device_id=DEVICE,
        type="pull",
        timestamp="2025-10-24T10:15:00.000Z",
        service="nodered",
        ok=False,
        message="manifest unknown",
        error_type="ErrImagePull",
        retry_count=1,
        next_retry="2025-10-24T10:15:10.000Z",
    )


def test_an_invalid_reference_pull_event_is_invalid_image_name_without_a_retry() -> None:
    result = pull_result("invalid_reference", "invalid reference format")
    after = apply_pull(runtime(SVC), result, POLICY, T0)

    event = pull_event(DEVICE, result, after, T0)

    assert (event.error_type, event.retry_count, event.next_retry) == ("InvalidImageName", 1, None)


def test_a_successful_pull_event_names_the_image() -> None:
    event = pull_event(DEVICE, pull_result(), runtime(SVC, image_ready=True), T0)

    assert event == Event(
        device_id=DEVICE,
        type="pull",
        timestamp="2025-10-24T10:15:00.000Z",
        service="nodered",
        ok=True,
        message="pulled nodered/node-red:latest",
    )
