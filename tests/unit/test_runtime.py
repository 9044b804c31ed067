"""Pure transitions of a service's history: config changes, exits, crash settling, retries."""

from __future__ import annotations

import math

import pytest
from msgspec.structs import replace

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure
from fleet_agent.model import RestartPolicy
from fleet_agent.runtime import (
    ExitDetails,
    ServiceRuntime,
    exit_message,
    ran_between,
    record_exit,
    retry_now,
    runtime_for,
    settle_crash,
    should_restart,
)

from .factories import T0, container, desired, failed, runtime

POLICY = BackoffPolicy()


def test_a_service_seen_for_the_first_time_starts_from_a_clean_slate() -> None:
    svc = desired()

    assert runtime_for(svc, None) == ServiceRuntime(
        config_hash=svc.config_hash,
        deploy=Backoff(),
        crash=Backoff(),
        image_ready=False,
        restart_count=0,
        started_at=None,
        exit_seen=None,
        stopped_by_user=False,
    )


def test_the_history_is_kept_while_the_config_hash_stays_the_same() -> None:
    svc = desired()
    history = runtime(svc, deploy=failed([T0, T0 + 10]), image_ready=True, restart_count=4)

    assert runtime_for(svc, history) is history


def test_a_config_change_resets_failures_restarts_and_image_readiness() -> None:
    old = desired(image="nodered/node-red:1.0")
    new = desired(image="nodered/node-red:2.0")
    history = runtime(old, deploy=failed([T0]), crash=failed([T0]), restart_count=4)

    fresh = runtime_for(new, history)

    assert fresh == ServiceRuntime(config_hash=new.config_hash)
    assert fresh.config_hash != old.config_hash


def test_retry_now_resets_both_backoffs_and_checks_the_image_again() -> None:
    svc = desired()
    history = runtime(
        svc,
        deploy=failed([T0 + n for n in range(10)]),
        crash=failed([T0], kind="CrashLoopBackOff"),
        image_ready=True,
        restart_count=3,
    )

    reset = retry_now(history)

    assert (reset.deploy, reset.crash, reset.image_ready) == (Backoff(), Backoff(), False)
    assert reset.restart_count == 3
    assert reset.config_hash == svc.config_hash


@pytest.mark.parametrize(
    ("policy", "exit_code", "stopped_by_user", "expected"),
    [
        ("always", 0, False, True),
        ("always", 1, False, True),
        ("always", 0, True, True),
        ("unless-stopped", 0, False, True),
        ("unless-stopped", 137, False, True),
        ("unless-stopped", 0, True, False),
        ("on-failure", 0, False, False),
        ("on-failure", 1, False, True),
        ("on-failure", None, False, False),
        ("no", 1, False, False),
        ("no", 0, False, False),
    ],
)
def test_restart_policies_decide_whether_an_exited_container_is_restarted(
    policy: RestartPolicy, exit_code: int | None, stopped_by_user: bool, expected: bool
) -> None:
    assert should_restart(policy, exit_code, stopped_by_user) is expected


def test_an_exit_that_will_be_restarted_feeds_the_crash_backoff() -> None:
    svc = desired(restart="always")
    gone = container(svc, "c-1", state="exited", exit_code=1)
    before = runtime(svc, started_at=T0 - 60)

    after = record_exit(before, gone, ExitDetails(1, log_tail="boom"), "always", POLICY, T0)

    assert after.exit_seen == "c-1"
    assert after.started_at is None
    assert after.crash == Backoff(
        failures=1,
        last=Failure(
            "CrashLoopBackOff", "Error: container exited with code 1; last output: boom", T0
        ),
        next_retry=T0 + 10,
        exhausted=False,
        times=(T0,),
    )


def test_an_exit_that_will_not_be_restarted_is_noted_but_costs_no_crash_budget() -> None:
    svc = desired(restart="on-failure")
    done = container(svc, "c-1", state="exited", exit_code=0)

    after = record_exit(runtime(svc), done, ExitDetails(0), "on-failure", POLICY, T0)

    assert after.exit_seen == "c-1"
    assert after.crash == Backoff()


def test_exit_messages_name_an_oom_kill_and_the_last_output() -> None:
    assert exit_message(ExitDetails(137, oom_killed=True)) == (
        "OOMKilled: container exited with code 137"
    )
    assert exit_message(ExitDetails(2, log_tail="a | b")) == (
        "Error: container exited with code 2; last output: a | b"
    )


def test_a_crash_history_is_forgotten_after_running_healthy_for_the_reset_period() -> None:
    svc = desired()
    crashed = runtime(svc, crash=failed([T0], kind="CrashLoopBackOff"), started_at=T0 + 10)

    assert settle_crash(crashed, T0 + 10 + 599.9, 600).crash.failures == 1
    assert settle_crash(crashed, T0 + 10 + 600, 600).crash == Backoff()


def test_at_an_exit_the_engines_own_run_time_decides_not_the_late_passes() -> None:
    """The pass that saw the start came 1 s late: by the agent's times the container ran
    0.5 s, by the engine's 1.5 s, which is healthy running."""
    svc = desired()
    crashed = runtime(svc, crash=failed([T0], kind="CrashLoopBackOff"), started_at=T0 + 11)

    assert settle_crash(crashed, T0 + 11.5, 1.0).crash.failures == 1
    assert settle_crash(crashed, T0 + 11.5, 1.0, ran_for=1.5).crash == Backoff()
    assert settle_crash(crashed, T0 + 20, 1.0, ran_for=0.5).crash.failures == 1


@pytest.mark.parametrize(
    ("started", "finished", "ran"),
    [
        ("2026-12-01T12:00:00.5Z", "2026-12-01T12:00:02.000000001Z", 1.5),
        ("2026-12-01T12:00:00Z", "0001-01-01T00:00:00Z", None),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", None),
        (None, "2026-12-01T12:00:00Z", None),
        ("garbage", "", None),
    ],
)
def test_the_run_time_is_read_from_the_engines_start_and_finish_times(
    started: object, finished: object, ran: float | None
) -> None:
    assert ran_between(started, finished) == ran


def test_a_crash_history_is_kept_while_the_container_is_not_running() -> None:
    svc = desired()
    crashed = runtime(svc, crash=failed([T0], kind="CrashLoopBackOff"), started_at=None)

    assert settle_crash(crashed, T0 + 10**6, 600) is crashed


@pytest.mark.parametrize(
    ("state", "running"),
    [
        ("running", True),
        ("restarting", True),
        ("paused", True),
        ("exited", False),
        ("created", False),
        ("dead", False),
    ],
)
def test_a_container_counts_as_running_in_running_restarting_and_paused_states(
    state: str, running: bool
) -> None:
    assert container(desired(), state=state).running is running


# --- settle_crash: the reset_after boundary ------------------------------------------------------


@pytest.mark.parametrize("reset_after", [0.5, 30.0, 600.0])
def test_the_crash_backoff_is_reset_exactly_reset_after_seconds_after_the_start(
    reset_after: float,
) -> None:
    svc = desired()
    crashed = runtime(
        svc,
        crash=failed([T0, T0 + 10], kind="CrashLoopBackOff"),
        started_at=T0 + 40,
        restart_count=2,
        image_ready=True,
    )

    settled = settle_crash(crashed, T0 + 40 + reset_after, reset_after)

    assert settled == replace(crashed, crash=Backoff())


@pytest.mark.parametrize("reset_after", [0.5, 30.0, 600.0])
def test_the_crash_backoff_is_kept_just_below_reset_after_seconds_since_the_start(
    reset_after: float,
) -> None:
    svc = desired()
    crashed = runtime(svc, crash=failed([T0], kind="CrashLoopBackOff"), started_at=T0 + 40)
    just_below = math.nextafter(T0 + 40 + reset_after, -math.inf)

    assert settle_crash(crashed, just_below, reset_after) is crashed


@pytest.mark.parametrize("now", [T0, T0 + 600, T0 + 10**9])
def test_a_container_that_is_not_running_never_resets_its_crash_backoff(now: float) -> None:
    svc = desired()
    crashed = runtime(svc, crash=failed([T0], kind="CrashLoopBackOff"), started_at=None)

    assert settle_crash(crashed, now, 0.001) is crashed


def test_settling_a_clean_history_leaves_the_runtime_as_it_was() -> None:
    svc = desired()
    clean = runtime(svc, started_at=T0)

    assert settle_crash(clean, T0 + 10**6, 600) is clean
