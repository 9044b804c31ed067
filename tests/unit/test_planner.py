"""The planner's diff of target against observed containers, per service and in order."""

from __future__ import annotations

import pytest

from fleet_agent.backoff import Backoff
from fleet_agent.model import DesiredService, RestartPolicy
from fleet_agent.planner import (
    Create,
    Plan,
    Pull,
    Remove,
    Start,
    Step,
    Stop,
    current_container,
    plan,
    subject,
)
from fleet_agent.runtime import Container, ServiceRuntime
from fleet_agent.spec import build_spec

from .factories import DEVICE, T0, container, desired, failed, runtime

NAME = f"fleet.{DEVICE}.nodered"


def plan_one(
    svc: DesiredService,
    containers: list[Container],
    state: ServiceRuntime,
    *,
    pulling: bool = False,
    now: float = T0,
) -> Plan:
    pulls = {(svc.name, svc.config_hash)} if pulling else set()
    return plan(DEVICE, [svc], containers, {svc.name: state}, pulls, now)


def create_and_start(svc: DesiredService) -> list[Step]:
    spec = build_spec(DEVICE, svc)
    return [Create(svc.name, spec), Start(svc.name, NAME)]


# --- add -------------------------------------------------------------------------------------


def test_a_missing_service_whose_image_is_not_ready_gets_a_pull_and_no_steps() -> None:
    svc = desired()

    result = plan_one(svc, [], runtime(svc))

    assert result == Plan(pulls=[Pull("nodered", "nodered/node-red:latest")], jobs={})


def test_a_missing_service_whose_image_is_ready_is_created_then_started_by_name() -> None:
    svc = desired(ports=["1880:1880"])

    result = plan_one(svc, [], runtime(svc, image_ready=True))

    assert result.pulls == []
    assert result.jobs == {"nodered": create_and_start(svc)}
    create = result.jobs["nodered"][0]
    assert isinstance(create, Create)
    assert create.spec.name == NAME
    assert create.spec.image == "nodered/node-red:latest"


def test_a_service_whose_pull_is_in_flight_gets_no_new_pull() -> None:
    svc = desired()

    result = plan_one(svc, [], runtime(svc), pulling=True)

    assert result == Plan(pulls=[], jobs={})


def test_a_running_service_at_its_target_config_needs_nothing() -> None:
    svc = desired()

    result = plan_one(svc, [container(svc)], runtime(svc, image_ready=True))

    assert result == Plan(pulls=[], jobs={})


# --- remove ----------------------------------------------------------------------------------


def test_a_running_container_whose_service_left_the_target_is_stopped_then_removed() -> None:
    gone = desired("legacy")

    result = plan(DEVICE, [], [container(gone, "c-legacy")], {}, set(), T0)

    assert result == Plan(
        pulls=[], jobs={"legacy": [Stop("legacy", "c-legacy"), Remove("legacy", "c-legacy")]}
    )


def test_an_exited_container_whose_service_left_the_target_is_removed_without_a_stop() -> None:
    gone = desired("legacy")
    exited = container(gone, "c-legacy", state="exited", exit_code=0)

    result = plan(DEVICE, [], [exited], {}, set(), T0)

    assert result.jobs == {"legacy": [Remove("legacy", "c-legacy")]}


def test_an_empty_target_removes_every_listed_container_and_nothing_else() -> None:
    a, b = desired("a"), desired("b")
    listed = [container(a, "c-a"), container(b, "c-b", state="exited", exit_code=1)]

    result = plan(DEVICE, [], listed, {}, set(), T0)

    assert result.jobs == {
        "a": [Stop("a", "c-a"), Remove("a", "c-a")],
        "b": [Remove("b", "c-b")],
    }


def test_a_listed_container_without_a_service_label_is_retired_under_its_name() -> None:
    stray = Container("c-x", "fleet_dev-001_x", None, None, "busybox", "running")

    result = plan(DEVICE, [], [stray], {}, set(), T0)

    assert result.jobs == {
        "fleet_dev-001_x": [Stop("fleet_dev-001_x", "c-x"), Remove("fleet_dev-001_x", "c-x")]
    }


def test_steps_only_ever_act_on_the_containers_the_planner_was_given() -> None:
    keep, change, gone = desired("keep"), desired("change", "busybox:2"), desired("gone")
    listed = [
        container(keep, "c-keep"),
        container(change, "c-change-old", config_hash="old-hash", image="busybox:1"),
        container(gone, "c-gone"),
    ]
    runtimes = {
        "keep": runtime(keep, image_ready=True),
        "change": runtime(change, image_ready=True),
    }

    result = plan(DEVICE, [keep, change], listed, runtimes, set(), T0)

    touched = {
        step.container
        for steps in result.jobs.values()
        for step in steps
        if isinstance(step, Stop | Remove)
    }
    assert touched == {"c-change-old", "c-gone"}
    assert set(result.jobs) == {"change", "gone"}


# --- change: download-then-kill --------------------------------------------------------------


def test_a_config_change_pulls_first_and_leaves_the_old_container_running() -> None:
    svc = desired(image="nodered/node-red:2.0")
    old = container(svc, "c-old", config_hash="old-hash", image="nodered/node-red:1.0")

    result = plan_one(svc, [old], runtime(svc))

    assert result == Plan(pulls=[Pull("nodered", "nodered/node-red:2.0")], jobs={})


def test_the_old_container_is_not_stopped_while_the_new_image_is_downloading() -> None:
    svc = desired(image="nodered/node-red:2.0")
    old = container(svc, "c-old", config_hash="old-hash", image="nodered/node-red:1.0")

    result = plan_one(svc, [old], runtime(svc), pulling=True)

    assert result == Plan(pulls=[], jobs={})


def test_the_old_container_is_not_stopped_while_the_failed_pull_backs_off() -> None:
    svc = desired(image="nodered/node-red:2.0")
    old = container(svc, "c-old", config_hash="old-hash", image="nodered/node-red:1.0")
    backing_off = runtime(svc, deploy=failed([T0]))  # next retry at T0 + 10

    result = plan_one(svc, [old], backing_off, now=T0 + 5)

    assert result == Plan(pulls=[], jobs={})


def test_the_old_container_is_not_stopped_when_the_retried_pull_is_due() -> None:
    svc = desired(image="nodered/node-red:2.0")
    old = container(svc, "c-old", config_hash="old-hash", image="nodered/node-red:1.0")

    result = plan_one(svc, [old], runtime(svc, deploy=failed([T0])), now=T0 + 10)

    assert result == Plan(pulls=[Pull("nodered", "nodered/node-red:2.0")], jobs={})


def test_the_old_container_keeps_running_when_the_pull_is_exhausted_or_invalid() -> None:
    svc = desired(image="nodered/node-red:2.0")
    old = container(svc, "c-old", config_hash="old-hash", image="nodered/node-red:1.0")
    exhausted = runtime(svc, deploy=failed([T0 + n for n in range(10)]))
    invalid = runtime(svc, deploy=failed([T0], kind="InvalidImageName", retryable=False))

    assert plan_one(svc, [old], exhausted, now=T0 + 10**6) == Plan(pulls=[], jobs={})
    assert plan_one(svc, [old], invalid, now=T0 + 10**6) == Plan(pulls=[], jobs={})


def test_once_the_new_image_is_ready_the_old_is_stopped_removed_then_new_created_started() -> None:
    svc = desired(image="nodered/node-red:2.0")
    old = container(svc, "c-old", config_hash="old-hash", image="nodered/node-red:1.0")

    result = plan_one(svc, [old], runtime(svc, image_ready=True))

    assert result.pulls == []
    assert result.jobs == {
        "nodered": [
            Stop("nodered", "c-old"),
            Remove("nodered", "c-old"),
            *create_and_start(svc),
        ]
    }


def test_an_exited_old_container_is_removed_without_a_stop_before_the_new_one_is_created() -> None:
    svc = desired(image="nodered/node-red:2.0")
    old = container(svc, "c-old", state="exited", exit_code=0, config_hash="old-hash")

    result = plan_one(svc, [old], runtime(svc, image_ready=True))

    assert result.jobs == {"nodered": [Remove("nodered", "c-old"), *create_and_start(svc)]}


def test_reordering_ports_or_environment_keeps_the_container_and_plans_nothing() -> None:
    before = desired(ports=["1880:1880", "5683:5683/udp"], environment={"A": "1", "TZ": "UTC"})
    after = desired(ports=["5683:5683/udp", "1880:1880"], environment={"TZ": "UTC", "A": "1"})
    running = container(before, "c-1")

    result = plan_one(after, [running], runtime(after))

    assert result == Plan(pulls=[], jobs={})


# --- backoff gates ---------------------------------------------------------------------------


def test_a_service_in_backoff_that_is_not_due_gets_no_steps() -> None:
    svc = desired()
    backing_off = runtime(svc, deploy=failed([T0], kind="StartFailure"), image_ready=True)

    assert plan_one(svc, [], backing_off, now=T0 + 9.9) == Plan(pulls=[], jobs={})
    assert plan_one(svc, [], backing_off, now=T0 + 10).jobs == {"nodered": create_and_start(svc)}


def test_an_exhausted_service_gets_no_steps_however_late() -> None:
    svc = desired()
    exhausted = runtime(svc, deploy=failed([T0 + n for n in range(10)], kind="StartFailure"))

    assert plan_one(svc, [], exhausted, now=T0 + 10**6) == Plan(pulls=[], jobs={})


def test_one_failing_service_does_not_change_another_services_plan() -> None:
    broken, healthy = desired("broken", "broken:1"), desired("healthy", "healthy:1")
    runtimes = {
        "broken": runtime(broken, deploy=failed([T0 + n for n in range(10)])),
        "healthy": runtime(healthy, image_ready=True),
    }
    alone = plan(DEVICE, [healthy], [], {"healthy": runtimes["healthy"]}, set(), T0 + 20)

    together = plan(DEVICE, [broken, healthy], [], runtimes, set(), T0 + 20)

    assert together == alone
    spec = build_spec(DEVICE, healthy)
    assert together.jobs == {
        "healthy": [Create("healthy", spec), Start("healthy", f"fleet.{DEVICE}.healthy")]
    }


def test_each_service_that_needs_an_image_gets_its_own_pull() -> None:
    a, b, c = desired("a", "a:1"), desired("b", "b:1"), desired("c", "c:1")
    runtimes = {"a": runtime(a), "b": runtime(b), "c": runtime(c)}

    result = plan(DEVICE, [a, b, c], [], runtimes, {("b", b.config_hash)}, T0)

    assert result.pulls == [Pull("a", "a:1"), Pull("c", "c:1")]
    assert result.jobs == {}


def test_a_pull_of_an_abandoned_config_does_not_hold_up_the_new_configs_pull() -> None:
    old, new = desired("svc", "svc:1"), desired("svc", "svc:2")

    result = plan(DEVICE, [new], [], {"svc": runtime(new)}, {("svc", old.config_hash)}, T0)

    assert result.pulls == [Pull("svc", "svc:2")]


# --- duplicates and half-created containers --------------------------------------------------


def test_of_two_containers_at_the_target_config_the_running_one_is_kept() -> None:
    svc = desired()
    exited = container(svc, "c-a", state="exited", exit_code=0)
    running = container(svc, "c-b")

    result = plan_one(svc, [exited, running], runtime(svc))

    assert result.jobs == {"nodered": [Remove("nodered", "c-a")]}
    assert current_container(svc, [exited, running]) == running


def test_of_two_running_duplicates_the_lowest_id_is_kept_and_the_other_stopped() -> None:
    svc = desired()
    first, second = container(svc, "c-a"), container(svc, "c-b")

    result = plan_one(svc, [second, first], runtime(svc))

    assert result.jobs == {"nodered": [Stop("nodered", "c-b"), Remove("nodered", "c-b")]}


def test_a_half_created_container_is_removed_before_a_new_one_is_created() -> None:
    svc = desired()
    half = container(svc, "c-half", state="created")

    result = plan_one(svc, [half], runtime(svc, image_ready=True))

    assert result.jobs == {"nodered": [Remove("nodered", "c-half"), *create_and_start(svc)]}
    assert current_container(svc, [half]) is None


def test_a_half_created_container_is_removed_even_while_the_image_is_pulled() -> None:
    svc = desired()
    half = container(svc, "c-half", state="created")

    result = plan_one(svc, [half], runtime(svc))

    assert result == Plan(
        pulls=[Pull("nodered", "nodered/node-red:latest")],
        jobs={"nodered": [Remove("nodered", "c-half")]},
    )


def test_half_created_and_old_containers_are_both_cleared_before_the_new_one() -> None:
    svc = desired(image="nodered/node-red:2.0")
    half = container(svc, "c-half", state="created")
    old = container(svc, "c-old", config_hash="old-hash", image="nodered/node-red:1.0")

    result = plan_one(svc, [old, half], runtime(svc, image_ready=True))

    assert result.jobs == {
        "nodered": [
            Remove("nodered", "c-half"),
            Stop("nodered", "c-old"),
            Remove("nodered", "c-old"),
            *create_and_start(svc),
        ]
    }


def test_a_dead_container_at_the_target_config_is_not_kept() -> None:
    svc = desired()

    assert current_container(svc, [container(svc, "c-dead", state="dead")]) is None


# --- restart policies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "exit_code", "restarted"),
    [
        ("always", 0, True),
        ("always", 1, True),
        ("unless-stopped", 0, True),
        ("unless-stopped", 1, True),
        ("on-failure", 0, False),
        ("on-failure", 1, True),
        ("no", 0, False),
        ("no", 1, False),
    ],
)
def test_an_exited_container_is_restarted_as_its_restart_policy_says(
    policy: RestartPolicy, exit_code: int, restarted: bool
) -> None:
    svc = desired(restart=policy)
    exited = container(svc, "c-1", state="exited", exit_code=exit_code)
    seen = runtime(svc, exit_seen="c-1")

    result = plan_one(svc, [exited], seen)

    expected = {"nodered": [Start("nodered", "c-1", restart=True)]} if restarted else {}
    assert result.jobs == expected
    assert result.pulls == []


def test_a_container_stopped_by_the_user_is_not_restarted_under_unless_stopped() -> None:
    svc = desired(restart="unless-stopped")
    exited = container(svc, "c-1", state="exited", exit_code=0)

    result = plan_one(svc, [exited], runtime(svc, exit_seen="c-1", stopped_by_user=True))

    assert result.jobs == {}


def test_an_exit_not_yet_recorded_for_this_container_is_not_restarted() -> None:
    svc = desired(restart="always")
    exited = container(svc, "c-new", state="exited", exit_code=1)

    assert plan_one(svc, [exited], runtime(svc)).jobs == {}
    assert plan_one(svc, [exited], runtime(svc, exit_seen="c-old")).jobs == {}


def test_a_crashing_container_is_restarted_only_once_its_crash_backoff_is_due() -> None:
    svc = desired(restart="always")
    exited = container(svc, "c-1", state="exited", exit_code=1)
    crashed = runtime(svc, exit_seen="c-1", crash=failed([T0, T0 + 10], kind="CrashLoopBackOff"))
    # second crash at T0 + 10, so the restart is due at T0 + 30

    assert plan_one(svc, [exited], crashed, now=T0 + 29.9).jobs == {}
    assert plan_one(svc, [exited], crashed, now=T0 + 30).jobs == {
        "nodered": [Start("nodered", "c-1", restart=True)]
    }


def test_a_container_whose_crash_budget_is_exhausted_is_not_restarted() -> None:
    svc = desired(restart="always")
    exited = container(svc, "c-1", state="exited", exit_code=1)
    crash = failed([T0 + n for n in range(10)], kind="CrashLoopBackOff")

    result = plan_one(svc, [exited], runtime(svc, exit_seen="c-1", crash=crash), now=T0 + 10**6)

    assert result.jobs == {}


def test_a_deploy_backoff_does_not_hold_back_a_restart() -> None:
    svc = desired(restart="always")
    exited = container(svc, "c-1", state="exited", exit_code=1)
    state = runtime(svc, exit_seen="c-1", crash=Backoff(), deploy=failed([T0]))

    assert plan_one(svc, [exited], state, now=T0 + 1).jobs == {
        "nodered": [Start("nodered", "c-1", restart=True)]
    }


# --- subject ---------------------------------------------------------------------------------


def test_steps_name_their_subject_by_container_name_or_short_id() -> None:
    svc = desired()
    full_id = "0123456789abcdef" * 4

    assert subject(Create("nodered", build_spec(DEVICE, svc))) == NAME
    assert subject(Start("nodered", NAME)) == NAME
    assert subject(Stop("nodered", full_id)) == "0123456789ab"
    assert subject(Remove("nodered", "c-1")) == "c-1"
