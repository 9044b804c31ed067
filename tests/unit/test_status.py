"""Status derivation: each service's serviceStatus and error in the contract's words."""

from __future__ import annotations

import msgspec

from fleet_agent import __version__
from fleet_agent.backoff import BackoffPolicy
from fleet_agent.model import DesiredService, DeviceState, ServiceError, ServiceStatus
from fleet_agent.runtime import Container, ServiceRuntime
from fleet_agent.status import StatusContext, build_report, device_state, service_status

from .factories import APP_ID, APP_NAME, DEVICE, T0, container, desired, failed, runtime

POLICY = BackoffPolicy()
SVC = desired()
OLD_IMAGE = "nodered/node-red:1.0"
NEW = desired(image="nodered/node-red:2.0")


def status_of(
    state: ServiceRuntime,
    mine: list[Container],
    *,
    pulling: bool = False,
    now: float = T0 + 60,
    svc: DesiredService = SVC,
) -> ServiceStatus:
    ctx = StatusContext(DEVICE, 7, POLICY, now)
    return service_status(ctx, svc, mine, state, pulling)


def three_pull_failures() -> ServiceRuntime:
    # failures at 10:15:00, 10:15:10 and 10:15:40; the third waits 40 s, until 10:16:20
    return runtime(NEW, deploy=failed([T0, T0 + 10, T0 + 40]))


def test_a_running_service_at_its_target_is_running_without_error() -> None:
    status = status_of(runtime(SVC, image_ready=True), [container(SVC, "c-1")], now=T0 + 0.012)

    assert status == ServiceStatus(
        device_id=DEVICE,
        app_id=APP_ID,
        app_name=APP_NAME,
        service_id=1,
        service_name="nodered",
        image_name="nodered/node-red:latest",
        service_status="running",
        container_id="c-1",
        running_image="nodered/node-red:latest",
        restart_count=0,
        error=None,
        target_version=7,
        updated_at="2025-10-24T10:15:00.012Z",
        exit_code=None,
    )


def test_a_service_with_nothing_yet_is_pending() -> None:
    status = status_of(runtime(SVC), [])

    assert (status.service_status, status.container_id, status.error) == ("pending", None, None)


def test_a_pull_in_flight_shows_downloading() -> None:
    status = status_of(runtime(SVC), [], pulling=True)

    assert (status.service_status, status.container_id, status.error) == (
        "downloading",
        None,
        None,
    )


def test_a_failed_pull_with_retries_left_shows_image_pull_backoff_and_the_next_retry() -> None:
    status = status_of(three_pull_failures(), [], svc=NEW)

    assert status.service_status == "error"
    assert status.container_id is None
    assert status.running_image is None
    assert status.error == ServiceError(
        type="ImagePullBackOff",
        message="manifest unknown",
        timestamp="2025-10-24T10:15:40.000Z",
        retry_count=3,
        max_retries=10,
        next_retry="2025-10-24T10:16:20.000Z",
        exhausted=False,
    )


def test_an_exhausted_pull_shows_err_image_pull_without_a_next_retry() -> None:
    state = runtime(SVC, deploy=failed([T0 + 10 * n for n in range(10)]))

    status = status_of(state, [], now=T0 + 1000)

    assert status.service_status == "error"
    assert status.error == ServiceError(
        type="ErrImagePull",
        message="manifest unknown",
        timestamp="2025-10-24T10:16:30.000Z",
        retry_count=10,
        max_retries=10,
        next_retry=None,
        exhausted=True,
    )


def test_an_invalid_image_name_shows_no_next_retry_and_is_not_exhausted() -> None:
    deploy = failed([T0], "InvalidImageName", "invalid reference format", retryable=False)

    status = status_of(runtime(SVC, deploy=deploy), [])

    assert status.error == ServiceError(
        type="InvalidImageName",
        message="invalid reference format",
        timestamp="2025-10-24T10:15:00.000Z",
        retry_count=1,
        max_retries=10,
        next_retry=None,
        exhausted=False,
    )


def test_a_blocked_update_shows_the_old_running_container_and_why_it_is_blocked() -> None:
    old = container(NEW, "c-old", config_hash="old-hash", image=OLD_IMAGE)

    status = status_of(three_pull_failures(), [old], svc=NEW)

    assert status.service_status == "error"
    assert status.container_id == "c-old"
    assert status.running_image == OLD_IMAGE
    assert status.image_name == "nodered/node-red:2.0"
    assert status.error is not None
    assert (status.error.type, status.error.retry_count, status.error.next_retry) == (
        "ImagePullBackOff",
        3,
        "2025-10-24T10:16:20.000Z",
    )


def test_an_update_being_downloaded_shows_downloading_with_the_old_container() -> None:
    old = container(NEW, "c-old", config_hash="old-hash", image=OLD_IMAGE)

    status = status_of(runtime(NEW), [old], pulling=True, svc=NEW)

    assert (status.service_status, status.container_id, status.running_image) == (
        "downloading",
        "c-old",
        OLD_IMAGE,
    )
    assert status.error is None


def test_an_exited_container_of_an_on_failure_service_with_code_0_is_exited() -> None:
    svc = desired(restart="on-failure")
    done = container(svc, "c-1", state="exited", exit_code=0)

    status = status_of(runtime(svc, exit_seen="c-1"), [done], svc=svc)

    assert status.service_status == "exited"
    assert status.exit_code == 0
    assert status.error is None
    assert status.container_id == "c-1"
    assert status.running_image is None


def test_a_failed_container_of_a_no_restart_service_is_exited_with_its_code() -> None:
    svc = desired(restart="no")
    done = container(svc, "c-1", state="exited", exit_code=3)

    status = status_of(runtime(svc, exit_seen="c-1"), [done], svc=svc)

    assert (status.service_status, status.exit_code, status.error) == ("exited", 3, None)


def test_a_container_stopped_by_the_user_is_stopped() -> None:
    svc = desired(restart="unless-stopped")
    done = container(svc, "c-1", state="exited", exit_code=0)

    status = status_of(runtime(svc, stopped_by_user=True), [done], svc=svc)

    assert status.service_status == "stopped"


def test_an_exited_container_about_to_be_restarted_for_the_first_time_is_starting() -> None:
    svc = desired(restart="always")
    done = container(svc, "c-1", state="exited", exit_code=0)

    status = status_of(runtime(svc), [done], svc=svc)

    assert (status.service_status, status.error) == ("starting", None)


def test_a_container_that_keeps_exiting_shows_crash_loop_backoff() -> None:
    svc = desired(restart="always")
    crashed = container(svc, "c-1", state="exited", exit_code=1)
    crash = failed([T0, T0 + 10], "CrashLoopBackOff", "Error: container exited with code 1")
    state = runtime(svc, crash=crash, exit_seen="c-1", restart_count=1)

    status = status_of(state, [crashed], now=T0 + 15, svc=svc)

    assert status.service_status == "error"
    assert status.restart_count == 1
    assert status.exit_code == 1
    assert status.error == ServiceError(
        type="CrashLoopBackOff",
        message="Error: container exited with code 1",
        timestamp="2025-10-24T10:15:10.000Z",
        retry_count=2,
        max_retries=10,
        next_retry="2025-10-24T10:15:30.000Z",
        exhausted=False,
    )


def test_an_exhausted_crash_loop_stays_crash_loop_backoff_without_a_next_retry() -> None:
    svc = desired(restart="on-failure")
    crashed = container(svc, "c-1", state="exited", exit_code=1)
    crash = failed([T0 + n for n in range(10)], "CrashLoopBackOff", "Error: exited 1")

    status = status_of(runtime(svc, crash=crash, exit_seen="c-1"), [crashed], svc=svc)

    assert status.error is not None
    assert (status.error.type, status.error.exhausted, status.error.next_retry) == (
        "CrashLoopBackOff",
        True,
        None,
    )


def test_a_restarted_container_that_runs_again_shows_no_error_despite_its_crash_history() -> None:
    svc = desired(restart="always")
    crash = failed([T0], "CrashLoopBackOff", "Error: exited 1")

    status = status_of(runtime(svc, crash=crash, restart_count=1), [container(svc)], svc=svc)

    assert (status.service_status, status.error, status.restart_count) == ("running", None, 1)


def test_a_failed_create_or_start_shows_start_failure() -> None:
    deploy = failed([T0], "StartFailure", "port is already allocated")

    status = status_of(runtime(SVC, deploy=deploy, image_ready=True), [])

    assert status.service_status == "error"
    assert status.error is not None
    assert (status.error.type, status.error.message, status.error.next_retry) == (
        "StartFailure",
        "port is already allocated",
        "2025-10-24T10:15:10.000Z",
    )


def test_a_running_container_at_its_target_shows_no_error_even_after_a_start_failure() -> None:
    # Contract: `error` is null whenever the service is healthy at its target. Here a Start was
    # reported failed (or the container was started by hand) yet the container runs at the
    # target config; the planner plans nothing, so nothing will ever clear the deploy backoff.
    deploy = failed([T0], "StartFailure", "context deadline exceeded")

    status = status_of(runtime(SVC, deploy=deploy, image_ready=True), [container(SVC, "c-1")])

    assert status.service_status == "running"
    assert status.error is None


# --- device state ----------------------------------------------------------------------------


def ctx(now: float = T0) -> StatusContext:
    return StatusContext(DEVICE, 7, POLICY, now)


def test_device_state_counts_services_by_status_and_is_not_converged_with_an_error() -> None:
    running = status_of(runtime(SVC), [container(SVC)])
    other = desired("other", "other:1")
    broken = status_of(runtime(other, deploy=failed([T0])), [], svc=other)

    state = device_state(ctx(T0 + 1.5), [running, broken], leftovers=0)

    assert state == DeviceState(
        device_id=DEVICE,
        agent_version=__version__,
        target_version=7,
        converged=False,
        counts={"error": 1, "running": 1},
        updated_at="2025-10-24T10:15:01.500Z",
    )


def test_device_state_is_converged_when_every_service_runs_and_nothing_is_left_over() -> None:
    running = status_of(runtime(SVC), [container(SVC)])

    assert device_state(ctx(), [running], leftovers=0).converged is True
    assert device_state(ctx(), [running], leftovers=1).converged is False


def test_device_state_is_not_converged_while_a_service_downloads_or_has_exited() -> None:
    downloading = status_of(runtime(SVC), [], pulling=True)
    svc = desired(restart="no")
    exited = status_of(runtime(svc), [container(svc, state="exited", exit_code=0)], svc=svc)

    state = device_state(ctx(), [downloading, exited], leftovers=0)

    assert state.converged is False
    assert state.counts == {"downloading": 1, "exited": 1}


def test_an_empty_target_with_nothing_left_over_is_converged_with_no_counts() -> None:
    state = device_state(ctx(), [], leftovers=0)

    assert (state.converged, state.counts) == (True, {})


def test_a_service_status_is_encoded_with_the_contracts_camel_case_keys() -> None:
    status = status_of(three_pull_failures(), [], svc=NEW, now=T0 + 40.012)

    assert msgspec.json.decode(msgspec.json.encode(status)) == {
        "deviceId": "dev-001",
        "appId": 1001,
        "appName": "test-error-handling",
        "serviceId": 1,
        "serviceName": "nodered",
        "imageName": "nodered/node-red:2.0",
        "serviceStatus": "error",
        "containerId": None,
        "runningImage": None,
        "restartCount": 0,
        "error": {
            "type": "ImagePullBackOff",
            "message": "manifest unknown",
            "timestamp": "2025-10-24T10:15:40.000Z",
            "retryCount": 3,
            "maxRetries": 10,
            "nextRetry": "2025-10-24T10:16:20.000Z",
            "exhausted": False,
        },
        "targetVersion": 7,
        "updatedAt": "2025-10-24T10:15:40.012Z",
        "exitCode": None,
        "progress": None,
    }


def test_a_report_names_the_services_whose_crash_backoff_has_not_been_reset() -> None:
    calm, crashy = desired("calm", "calm:1"), desired("crashy", "crashy:1")
    runtimes = {
        "calm": runtime(calm),
        "crashy": runtime(crashy, crash=failed([T0], kind="CrashLoopBackOff")),
    }
    ctx = StatusContext(DEVICE, 7, BackoffPolicy(), T0)

    report = build_report(ctx, [calm, crashy], [], runtimes, set(), [])

    assert report.crash_settling == ["crashy"]
    assert [s.service_name for s in report.services] == ["calm", "crashy"]


def test_a_service_whose_old_container_is_being_stopped_is_stopping() -> None:
    ctx = StatusContext(DEVICE, 7, POLICY, T0)
    old = container(SVC, "c-old", config_hash="old")

    status = service_status(ctx, SVC, [old], runtime(SVC), False, "stopping")

    assert (status.service_status, status.container_id) == ("stopping", "c-old")


def test_a_start_under_way_whose_container_already_runs_is_running() -> None:
    ctx = StatusContext(DEVICE, 7, POLICY, T0)
    crashed = runtime(SVC, crash=failed([T0 - 5], kind="CrashLoopBackOff"))
    up = container(SVC, "c-1")
    down = container(SVC, "c-1", state="exited", exit_code=3)

    running = service_status(ctx, SVC, [up], crashed, False, "starting")
    restarting = service_status(ctx, SVC, [down], crashed, False, "starting")

    assert (running.service_status, running.error) == ("running", None)
    assert restarting.service_status == "starting"
    assert restarting.error is not None and restarting.error.type == "CrashLoopBackOff"
