"""What is worth publishing: the MQTT feed and the file publisher's content key (pure).

The feed's alerts, state-change events, history and retained topics, then `content_key`.
"""

from __future__ import annotations

import msgspec
import pytest
from msgspec.structs import replace

from fleet_agent.feed import (
    AGENT,
    HISTORY_LENGTH,
    FeedState,
    advance,
    agent_alert,
    alert_changes,
    conclude,
    next_alert,
    retained,
    with_ack,
)
from fleet_agent.intake import NO_TARGET, decide
from fleet_agent.model import (
    Ack,
    Alert,
    ErrorType,
    Event,
    FieldError,
    HistoryEntry,
    ServiceState,
    ServiceStatus,
    iso,
)
from fleet_agent.report import Report, content_key

from .factories import DEVICE, T0, report, state_doc, status, status_error

ENGINE_DOWN = "Error while fetching server API version: connection refused"
IMAGE_PATH = "$.apps.1001.services[0].imageName"
REJECTED = Ack(
    8,
    False,
    400,
    iso(T0),
    [
        FieldError(IMAGE_PATH, "invalid reference format"),
        FieldError("$.apps.1001.services[0].config.restart", "invalid value"),
    ],
)
REJECTED_MESSAGE = (
    "target version 8 rejected (400): "
    f"{IMAGE_PATH}: invalid reference format; "
    "$.apps.1001.services[0].config.restart: invalid value"
)


def failing(
    retry_count: int = 1,
    *,
    at: float = T0,
    kind: ErrorType = "ImagePullBackOff",
    message: str = "manifest unknown",
    exhausted: bool = False,
) -> ServiceStatus:
    """nodered in error after `retry_count` failures, the last one at `at`, retried 10 s later."""
    err = status_error(
        kind, message, retry_count=retry_count, at=at, next_retry=at + 10, exhausted=exhausted
    )
    return status("nodered", "error", err, at=at, container_id=None)


def out_of_retries(at: float = T0 + 1000, name: str = "nodered") -> ServiceStatus:
    """The tenth pull failure: no retry left."""
    err = status_error("ErrImagePull", retry_count=10, at=at, next_retry=None, exhausted=True)
    return status(name, "error", err, at=at, container_id=None)


def accepted(version: int = 9) -> Ack:
    return Ack(version, True, 200, iso(T0))


# --- next_alert --------------------------------------------------------------------------------


def test_a_service_entering_error_raises_a_warning_with_the_error_type_message_and_count() -> None:
    alert = next_alert(None, failing(3), T0 + 5)

    assert alert == Alert(
        device_id=DEVICE,
        service="nodered",
        severity="warning",
        type="ImagePullBackOff",
        message="manifest unknown",
        raised_at="2025-10-24T10:15:05.000Z",
        updated_at="2025-10-24T10:15:05.000Z",
        retry_count=3,
    )


def test_a_further_failure_of_the_same_type_keeps_the_very_same_alert() -> None:
    first = next_alert(None, failing(1, at=T0), T0)
    later = failing(2, at=T0 + 10, message="connection reset by peer")

    assert first is not None
    assert next_alert(first, later, T0 + 10) is first


def test_exhausted_retries_escalate_to_critical_max_retries_exceeded_keeping_raised_at() -> None:
    first = next_alert(None, failing(1, at=T0), T0)

    escalated = next_alert(first, out_of_retries(T0 + 1000), T0 + 1000.5)

    assert escalated == Alert(
        device_id=DEVICE,
        service="nodered",
        severity="critical",
        type="MaxRetriesExceeded",
        message="manifest unknown",
        raised_at="2025-10-24T10:15:00.000Z",
        updated_at="2025-10-24T10:31:40.500Z",
        retry_count=10,
    )


def test_an_escalated_alert_stays_the_same_object_while_retries_remain_exhausted() -> None:
    escalated = next_alert(None, out_of_retries(T0), T0)

    assert escalated is not None
    assert next_alert(escalated, out_of_retries(T0 + 30), T0 + 30) is escalated


def test_a_non_retryable_error_is_a_warning_under_its_own_type_as_the_contract_raises_it() -> None:
    invalid = status_error(
        "InvalidImageName", "invalid reference format", next_retry=None, exhausted=False
    )

    alert = next_alert(None, status("nodered", "error", invalid, container_id=None), T0)

    assert alert == Alert(
        DEVICE,
        "nodered",
        "warning",
        "InvalidImageName",
        "invalid reference format",
        iso(T0),
        iso(T0),
        1,
    )


def test_a_new_error_type_at_the_same_severity_replaces_the_alert_keeping_raised_at() -> None:
    first = next_alert(None, failing(1, at=T0), T0)
    crash = failing(1, at=T0 + 60, kind="CrashLoopBackOff", message="exited with code 1")

    alert = next_alert(first, crash, T0 + 60)

    assert alert == Alert(
        DEVICE,
        "nodered",
        "warning",
        "CrashLoopBackOff",
        "exited with code 1",
        iso(T0),
        iso(T0 + 60),
        1,
    )


def test_a_recovered_service_clears_its_alert() -> None:
    first = next_alert(None, failing(2), T0)

    assert first is not None
    assert next_alert(first, status("nodered", "running", at=T0 + 30), T0 + 30) is None


# --- agent_alert -------------------------------------------------------------------------------


def test_an_unreachable_engine_is_a_critical_alert_that_wins_over_a_rejected_target() -> None:
    alert = agent_alert(None, DEVICE, ENGINE_DOWN, REJECTED, T0)

    assert alert == Alert(
        DEVICE, AGENT, "critical", "EngineUnavailable", ENGINE_DOWN, iso(T0), iso(T0), None
    )


def test_a_rejected_target_is_a_warning_naming_its_version_code_and_every_error_path() -> None:
    alert = agent_alert(None, DEVICE, None, REJECTED, T0)

    assert alert == Alert(
        DEVICE, AGENT, "warning", "TargetRejected", REJECTED_MESSAGE, iso(T0), iso(T0), None
    )


@pytest.mark.parametrize(("engine_error", "rejected"), [(ENGINE_DOWN, None), (None, REJECTED)])
def test_unchanged_inputs_keep_the_very_same_device_alert(
    engine_error: str | None, rejected: Ack | None
) -> None:
    first = agent_alert(None, DEVICE, engine_error, rejected, T0)

    assert first is not None
    assert agent_alert(first, DEVICE, engine_error, rejected, T0 + 30) is first


def test_a_new_engine_error_message_updates_the_alert_keeping_raised_at() -> None:
    first = agent_alert(None, DEVICE, ENGINE_DOWN, None, T0)

    alert = agent_alert(first, DEVICE, "permission denied", None, T0 + 30)

    assert alert == Alert(
        DEVICE,
        AGENT,
        "critical",
        "EngineUnavailable",
        "permission denied",
        iso(T0),
        iso(T0 + 30),
        None,
    )


def test_a_rejected_target_left_once_the_engine_is_back_is_raised_anew() -> None:
    first = agent_alert(None, DEVICE, ENGINE_DOWN, REJECTED, T0)

    alert = agent_alert(first, DEVICE, None, REJECTED, T0 + 30)

    assert alert == Alert(
        DEVICE,
        AGENT,
        "warning",
        "TargetRejected",
        REJECTED_MESSAGE,
        iso(T0 + 30),
        iso(T0 + 30),
        None,
    )


def test_no_engine_error_and_no_rejected_target_means_no_device_alert() -> None:
    first = agent_alert(None, DEVICE, ENGINE_DOWN, None, T0)

    assert agent_alert(None, DEVICE, None, None, T0) is None
    assert agent_alert(first, DEVICE, None, None, T0 + 30) is None


# --- advance -----------------------------------------------------------------------------------


def test_the_first_report_passes_its_events_on_first_then_one_state_event_per_service() -> None:
    pulled = Event(DEVICE, "pull", iso(T0), "mosquitto", True, "pulled eclipse-mosquitto:2")
    broker = status("mosquitto", "running", at=T0, service_id=2)

    _, events = advance(FeedState(), report(broker, failing(1), events=[pulled]), T0)

    assert events == [
        pulled,
        Event(DEVICE, "state", iso(T0), "mosquitto", True, "absent -> running"),
        Event(
            DEVICE,
            "state",
            iso(T0),
            "nodered",
            ok=False,
            message="absent -> error: ImagePullBackOff: manifest unknown",
            error_type="ImagePullBackOff",
            retry_count=1,
            next_retry=iso(T0 + 10),
        ),
    ]


def test_a_report_differing_only_in_updated_at_makes_no_event_and_no_history_entry() -> None:
    first, _ = advance(FeedState(), report(failing(1, at=T0), at=T0), T0)
    restamped = replace(failing(1, at=T0), updated_at=iso(T0 + 30))

    after, events = advance(first, report(restamped, at=T0 + 30), T0 + 30)

    assert events == []
    assert after.history == first.history
    assert after.statuses == {"nodered": restamped}


CHANGES = {
    "status": (
        replace(failing(1, at=T0 + 10), service_status="exited"),
        "error -> exited: ImagePullBackOff: manifest unknown",
    ),
    "error type": (
        failing(1, at=T0 + 10, kind="StartFailure", message="port is already allocated"),
        "error -> error: StartFailure: port is already allocated",
    ),
    "retry count": (failing(2, at=T0 + 10), "error -> error: ImagePullBackOff: manifest unknown"),
    "exhaustion": (
        failing(1, at=T0 + 10, exhausted=True),
        "error -> error: ImagePullBackOff: manifest unknown",
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_new_status_error_type_retry_count_or_exhaustion_is_one_event_and_history_entry(
    change: str,
) -> None:
    changed, message = CHANGES[change]
    assert changed.error is not None
    first, _ = advance(FeedState(), report(failing(1, at=T0)), T0)

    after, events = advance(first, report(changed, at=T0 + 10), T0 + 10)

    assert [(e.type, e.service, e.message, e.timestamp) for e in events] == [
        ("state", "nodered", message, iso(T0 + 10))
    ]
    assert after.history["nodered"] == [
        HistoryEntry(iso(T0), "error", "ImagePullBackOff", "manifest unknown", 1),
        HistoryEntry(
            iso(T0 + 10),
            changed.service_status,
            changed.error.type,
            changed.error.message,
            changed.error.retry_count,
        ),
    ]


def test_a_recovery_is_one_event_and_a_history_entry_without_error() -> None:
    first, _ = advance(FeedState(), report(failing(3, at=T0)), T0)

    after, events = advance(first, report(status("nodered", "running", at=T0 + 60)), T0 + 60)

    assert events == [Event(DEVICE, "state", iso(T0 + 60), "nodered", True, "error -> running")]
    assert after.history["nodered"] == [
        HistoryEntry(iso(T0), "error", "ImagePullBackOff", "manifest unknown", 3),
        HistoryEntry(iso(T0 + 60), "running"),
    ]
    assert after.alerts == {}


def test_history_keeps_only_the_last_20_changes_oldest_first() -> None:
    state = FeedState()
    for count in range(1, 26):
        state, _ = advance(state, report(failing(count, at=T0 + count)), T0 + count)

    history = state.history["nodered"]

    assert HISTORY_LENGTH == 20
    assert [entry.retry_count for entry in history] == list(range(6, 26))
    assert [entry.timestamp for entry in history] == [iso(T0 + n) for n in range(6, 26)]


def test_a_service_in_error_gets_an_alert_that_stays_the_same_object_on_further_failures() -> None:
    first, _ = advance(FeedState(), report(failing(1, at=T0)), T0)
    second, _ = advance(first, report(failing(2, at=T0 + 10)), T0 + 10)

    assert first.alerts == {
        "nodered": Alert(
            DEVICE,
            "nodered",
            "warning",
            "ImagePullBackOff",
            "manifest unknown",
            iso(T0),
            iso(T0),
            1,
        )
    }
    assert second.alerts["nodered"] is first.alerts["nodered"]


def test_a_service_that_leaves_the_report_leaves_statuses_alerts_and_history() -> None:
    broker = status("mosquitto", "running", service_id=2)
    first, _ = advance(FeedState(), report(broker, failing(4)), T0)
    assert set(first.alerts) == {"nodered"}

    after, events = advance(first, report(broker, at=T0 + 30), T0 + 30)

    assert events == []
    assert (set(after.statuses), set(after.alerts), set(after.history)) == (
        {"mosquitto"},
        set(),
        {"mosquitto"},
    )


def test_an_engine_error_in_the_report_raises_the_device_alert_and_its_end_clears_it() -> None:
    down, _ = advance(FeedState(), report(engine_error=ENGINE_DOWN), T0)

    up, _ = advance(down, report(at=T0 + 30), T0 + 30)

    assert down.alerts == {
        AGENT: Alert(
            DEVICE, AGENT, "critical", "EngineUnavailable", ENGINE_DOWN, iso(T0), iso(T0), None
        )
    }
    assert (down.engine_error, down.device_id) == (ENGINE_DOWN, DEVICE)
    assert (up.alerts, up.engine_error) == ({}, None)


def test_an_engine_error_lasting_several_passes_keeps_the_same_device_alert() -> None:
    # Regression: the device alert was raised anew at every pass (new raisedAt/updatedAt), so
    # the retained alerts/_agent topic was republished on every pass.
    down, _ = advance(FeedState(), report(engine_error=ENGINE_DOWN), T0)

    still_down, _ = advance(down, report(at=T0 + 30, engine_error=ENGINE_DOWN), T0 + 30)

    assert still_down.alerts[AGENT] == down.alerts[AGENT]
    assert still_down.alerts[AGENT].raised_at == iso(T0)


def test_a_rejected_target_alert_survives_later_passes_unchanged() -> None:
    # Regression: the TargetRejected alert was raised anew at every pass.
    fed, _ = advance(FeedState(), report(status()), T0)
    rejected = with_ack(fed, REJECTED, T0 + 1)

    later, _ = advance(rejected, report(status(at=T0 + 30), at=T0 + 30), T0 + 30)

    assert later.alerts[AGENT] == rejected.alerts[AGENT]
    assert later.alerts[AGENT].raised_at == iso(T0 + 1)


def test_a_device_alert_raised_before_the_first_report_takes_the_device_id_of_the_report() -> None:
    # A target can be rejected before the first pass has reported; the feed then has no device id.
    early = with_ack(FeedState(), REJECTED, T0)

    fed, _ = advance(early, report(status(at=T0 + 1), at=T0 + 1), T0 + 1)

    assert fed.alerts[AGENT].device_id == DEVICE
    assert (fed.alerts[AGENT].type, fed.alerts[AGENT].message) == (
        "TargetRejected",
        REJECTED_MESSAGE,
    )


# --- with_ack ----------------------------------------------------------------------------------


def test_a_rejected_ack_raises_a_target_rejected_warning_on_the_device() -> None:
    fed, _ = advance(FeedState(), report(status()), T0)

    after = with_ack(fed, REJECTED, T0 + 1)

    assert after.rejected == REJECTED
    assert after.alerts == {
        AGENT: Alert(
            DEVICE,
            AGENT,
            "warning",
            "TargetRejected",
            REJECTED_MESSAGE,
            iso(T0 + 1),
            iso(T0 + 1),
            None,
        )
    }
    assert after.statuses == fed.statuses


def test_an_accepted_ack_clears_the_rejected_target_alert() -> None:
    fed, _ = advance(FeedState(), report(status()), T0)
    rejected = with_ack(fed, REJECTED, T0 + 1)

    after = with_ack(rejected, accepted(), T0 + 2)

    assert (after.rejected, after.alerts) == (None, {})


def test_an_accepted_ack_leaves_an_engine_alert_in_place() -> None:
    down, _ = advance(FeedState(), report(engine_error=ENGINE_DOWN), T0)

    after = with_ack(with_ack(down, REJECTED, T0 + 1), accepted(), T0 + 2)

    assert after.alerts == down.alerts


def test_a_no_target_ack_changes_nothing() -> None:
    fed, _ = advance(FeedState(), report(status()), T0)
    rejected = with_ack(fed, REJECTED, T0 + 1)
    empty = Ack(None, False, NO_TARGET, iso(T0 + 2))

    assert with_ack(rejected, empty, T0 + 2) is rejected
    assert with_ack(fed, empty, T0 + 2) is fed


# --- retained ----------------------------------------------------------------------------------


def test_the_retained_topics_are_state_and_each_services_status_history_and_alert() -> None:
    broker = status("mosquitto", "running", service_id=2)
    _, done = conclude(FeedState(), report(broker, failing(1)), T0)

    topics = retained(done)

    assert set(topics) == {
        "state",
        "services/mosquitto",
        "history/mosquitto",
        "services/nodered",
        "history/nodered",
        "alerts/nodered",
    }


def test_the_device_alert_is_retained_under_alerts_agent_while_active() -> None:
    down, was_down = conclude(FeedState(), report(engine_error=ENGINE_DOWN), T0)
    _, is_up = conclude(down, report(at=T0 + 30), T0 + 30)

    assert set(retained(was_down)) == {"state", "alerts/_agent"}
    assert set(retained(is_up)) == {"state"}


def test_content_keys_of_status_and_state_ignore_updated_at_but_payloads_do_not() -> None:
    one = report(status(at=T0), at=T0)
    two = report(status(at=T0 + 30), at=T0 + 30)
    first, one = conclude(FeedState(), one, T0)
    _, two = conclude(first, two, T0 + 30)

    before, after = retained(one), retained(two)

    for topic in ("state", "services/nodered"):
        assert before[topic].key == after[topic].key, topic
        assert before[topic].payload != after[topic].payload, topic
    assert before["history/nodered"] == after["history/nodered"]


def test_content_keys_change_when_a_service_status_changes() -> None:
    one = report(status("nodered", "starting", at=T0), at=T0)
    two = report(status("nodered", "running", at=T0 + 30), at=T0 + 30)
    first, one = conclude(FeedState(), one, T0)
    _, two = conclude(first, two, T0 + 30)

    before, after = retained(one), retained(two)

    for topic in ("state", "services/nodered", "history/nodered"):
        assert before[topic].key != after[topic].key, topic


def test_retained_payloads_are_the_contracts_camel_case_json() -> None:
    _, done = conclude(FeedState(), report(failing(3)), T0 + 0.25)

    topics = {name: msgspec.json.decode(t.payload) for name, t in retained(done).items()}

    assert topics == {
        "state": {
            "deviceId": DEVICE,
            "agentVersion": "0.1.0",
            "targetVersion": 7,
            "converged": False,
            "counts": {"error": 1},
            "updatedAt": "2025-10-24T10:15:00.000Z",
        },
        "services/nodered": {
            "deviceId": DEVICE,
            "appId": 1001,
            "appName": "test-error-handling",
            "serviceId": 1,
            "serviceName": "nodered",
            "imageName": "nodered/node-red:latest",
            "serviceStatus": "error",
            "containerId": None,
            "runningImage": None,
            "restartCount": 0,
            "error": {
                "type": "ImagePullBackOff",
                "message": "manifest unknown",
                "timestamp": "2025-10-24T10:15:00.000Z",
                "retryCount": 3,
                "maxRetries": 10,
                "nextRetry": "2025-10-24T10:15:10.000Z",
                "exhausted": False,
            },
            "targetVersion": 7,
            "updatedAt": "2025-10-24T10:15:00.000Z",
            "exitCode": None,
            "progress": None,
        },
        "history/nodered": [
            {
                "timestamp": "2025-10-24T10:15:00.000Z",
                "serviceStatus": "error",
                "errorType": "ImagePullBackOff",
                "message": "manifest unknown",
                "retryCount": 3,
            }
        ],
        "alerts/nodered": {
            "deviceId": DEVICE,
            "service": "nodered",
            "severity": "warning",
            "type": "ImagePullBackOff",
            "message": "manifest unknown",
            "raisedAt": "2025-10-24T10:15:00.250Z",
            "updatedAt": "2025-10-24T10:15:00.250Z",
            "retryCount": 3,
        },
    }


def test_the_state_topic_is_the_device_state_it_is_given() -> None:
    _, done = conclude(FeedState(), report(status()), T0)
    other = state_doc(status(), at=T0 + 5, converged=False)

    topic = retained(replace(done, state=other))["state"]

    assert topic.payload == msgspec.json.encode(other)
    assert topic.key == replace(other, updated_at="")


# --- publish.content_key (the file publisher's change detection) --------------------------------


def test_the_file_content_key_ignores_updated_at_stamps_and_events() -> None:
    pulled = Event(DEVICE, "pull", iso(T0 + 30), "nodered", True, "pulled")
    one = report(status(at=T0), at=T0)
    two = report(status(at=T0 + 30), at=T0 + 30, events=[pulled])

    assert one != two
    assert content_key(one) == content_key(two)


@pytest.mark.parametrize(
    "changed",
    [
        report(status("nodered", "starting")),
        report(status("nodered", "running", image="nodered/node-red:2.0")),
        report(failing(1)),
        report(status(), engine_error=ENGINE_DOWN),
        Report(state_doc(status(), converged=False), [status()]),
        report(status(), status("mosquitto", service_id=2)),
    ],
    ids=["status", "image", "error", "engine error", "converged", "new service"],
)
def test_the_file_content_key_changes_with_any_real_change(changed: Report) -> None:
    assert content_key(changed) != content_key(report(status()))


# --- crash-alert hysteresis --------------------------------------------------------------------

CRASH_MESSAGE = "Error: container exited with code 1"


def crash_looping(at: float, restarts: int, retry_count: int = 1) -> ServiceStatus:
    """nodered in CrashLoopBackOff after `restarts` restarts, the last exit at `at`."""
    err = status_error(
        "CrashLoopBackOff", CRASH_MESSAGE, retry_count=retry_count, at=at, next_retry=at + 10
    )
    return replace(status("nodered", "error", err, at=at), restart_count=restarts)


def running_after(restarts: int, at: float, state: ServiceState = "running") -> ServiceStatus:
    """nodered without error after `restarts` restarts (running unless told)."""
    return replace(
        status("nodered", "running", at=at), service_status=state, restart_count=restarts
    )


def crash_alert(at: float = T0) -> Alert:
    alert = next_alert(None, crash_looping(at, 1), at)
    assert alert is not None
    return alert


def test_a_crash_loop_alert_stays_the_same_object_while_the_crash_backoff_is_settling() -> None:
    previous = crash_alert()

    kept = next_alert(previous, running_after(2, T0 + 10), T0 + 10, crash_settling=True)

    assert kept is previous
    assert kept == Alert(
        DEVICE, "nodered", "warning", "CrashLoopBackOff", CRASH_MESSAGE, iso(T0), iso(T0), 1
    )


def test_a_crash_loop_alert_is_cleared_once_the_crash_backoff_has_been_reset() -> None:
    assert next_alert(crash_alert(), running_after(2, T0 + 700), T0 + 700) is None


@pytest.mark.parametrize(
    "previous",
    [
        next_alert(None, failing(3), T0),
        next_alert(None, out_of_retries(T0), T0),
        agent_alert(None, DEVICE, ENGINE_DOWN, None, T0),
    ],
    ids=["ImagePullBackOff", "MaxRetriesExceeded", "EngineUnavailable"],
)
def test_an_alert_of_another_type_is_cleared_by_a_running_restarted_container_at_once(
    previous: Alert | None,
) -> None:
    assert previous is not None
    assert next_alert(previous, running_after(2, T0 + 10), T0 + 10, crash_settling=True) is None


@pytest.mark.parametrize("state", ["starting", "stopped", "exited", "pending", "downloading"])
def test_a_crash_loop_alert_is_cleared_when_the_service_is_not_running_and_has_no_error(
    state: ServiceState,
) -> None:
    assert next_alert(crash_alert(), running_after(2, T0 + 10, state), T0 + 10, True) is None


def test_a_crash_looping_service_keeps_its_alert_while_its_report_says_it_is_settling() -> None:
    crashed, _ = advance(FeedState(), report(crash_looping(T0, 1), crash_settling=["nodered"]), T0)
    raised = crashed.alerts["nodered"]
    assert raised.type == "CrashLoopBackOff"

    state = crashed
    for at in (T0 + 10, T0 + 12, T0 + 14):
        running = report(running_after(2, at), at=at, crash_settling=["nodered"])
        state, _ = advance(state, running, at)
        assert state.alerts == {"nodered": raised}, at - T0

    settled, _ = advance(state, report(running_after(2, T0 + 700), at=T0 + 700), T0 + 700)

    assert settled.alerts == {}


def test_a_crash_looping_service_whose_new_config_runs_loses_its_alert_in_the_same_pass() -> None:
    state, _ = advance(FeedState(), report(crash_looping(T0, 1), crash_settling=["nodered"]), T0)

    fresh, _ = advance(state, report(running_after(0, T0 + 10), at=T0 + 10), T0 + 10)

    assert fresh.alerts == {}


# --- a rejected target without a version -------------------------------------------------------


def test_a_rejected_oversized_target_without_a_version_is_described_without_none() -> None:
    ack = decide(b"x" * 20, None, T0, max_bytes=10).ack
    assert (ack.version, ack.accepted, ack.code) == (None, False, 413)

    alert = agent_alert(None, DEVICE, None, ack, T0)

    assert alert == Alert(
        DEVICE,
        AGENT,
        "warning",
        "TargetRejected",
        "target rejected (413): $: payload of 20 bytes exceeds the limit of 10 bytes",
        iso(T0),
        iso(T0),
        None,
    )


def test_a_rejected_ack_without_a_version_raises_the_device_alert_naming_no_version() -> None:
    rejected = Ack(None, False, 400, iso(T0), [FieldError("$", "malformed JSON")])

    after = with_ack(FeedState(device_id=DEVICE), rejected, T0 + 1)

    assert after.alerts[AGENT].message == "target rejected (400): $: malformed JSON"
    assert "None" not in after.alerts[AGENT].message


def test_a_pass_that_raises_an_alert_carries_one_raised_change_with_the_alert() -> None:
    _, done = conclude(FeedState(), report(failing(1)), T0)

    assert [(c.event, c.service) for c in done.alert_changes] == [("raised", "nodered")]
    assert done.alert_changes[0].alert == done.alerts["nodered"]


def test_exhaustion_is_one_escalated_change_and_recovery_one_cleared_change() -> None:
    raised, _ = conclude(FeedState(), report(failing(1)), T0)
    exhausted, escalated = conclude(raised, report(out_of_retries()), T0 + 100)
    _, cleared = conclude(exhausted, report(status(at=T0 + 200)), T0 + 200)

    assert [(c.event, c.alert.type) for c in escalated.alert_changes] == [
        ("escalated", "MaxRetriesExceeded")
    ]
    assert [(c.event, c.alert.severity) for c in cleared.alert_changes] == [("cleared", "critical")]
    assert cleared.alerts == {}


def test_a_further_failure_of_the_same_type_makes_no_alert_change() -> None:
    first, _ = conclude(FeedState(), report(failing(1)), T0)
    _, again = conclude(first, report(failing(2, at=T0 + 10)), T0 + 10)

    assert again.alert_changes == []
    assert again.history["nodered"][-1].retry_count == 2


def test_a_new_type_at_the_same_severity_is_raised_again_not_escalated() -> None:
    before = {"nodered": crash_alert()}
    after = {"nodered": replace(crash_alert(), type="StartFailure")}

    assert [c.event for c in alert_changes(before, after)] == ["raised"]


def test_a_rejected_ack_is_a_raised_device_alert_change_in_the_next_report() -> None:
    state, _done = conclude(FeedState(device_id=DEVICE), report(status()), T0)
    rejected = Ack(3, False, 409, iso(T0), [FieldError("$.version", "stale")])

    _, acked = conclude(with_ack(state, rejected, T0 + 1), report(status(at=T0 + 1)), T0 + 1)

    assert [(c.event, c.service) for c in acked.alert_changes] == [("raised", AGENT)]
