"""The pure decisions of a rollout: phase plans, per-device judgement, the abort rule, intent
before publishing and its reconciliation after a restart, rollback and control requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from fleet_agent import cli
from fleet_agent.model import Ack, ServiceError, ServiceStatus
from fleet_agent.operator import rollout_logic as logic
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.rollout_cmd import duration
from fleet_agent.operator.rollout_driver import lease_free
from fleet_agent.operator.rollout_model import (
    Lease,
    RolloutError,
    Spec,
    State,
    decode,
    encode,
    failure_limit_exceeded,
    plan,
    select,
)
from fleet_agent.operator.wire import DeviceInfo
from fleet_agent.validate import decode_target

T0 = 1_761_300_900.0
RELEASE: dict[str, Any] = {
    "apps": {
        "1": {
            "appId": 1,
            "appName": "a",
            "services": [{"serviceId": 1, "serviceName": "web", "imageName": "app:2"}],
        }
    }
}


def status(
    version: int, state: str = "running", error: str | None = None, restarts: int = 0
) -> ServiceStatus:
    failure = None
    if error is not None:
        failure = ServiceError(error, "boom", "t", 1, 10, None, False)  # type: ignore[arg-type]
    return ServiceStatus(
        "d", 1, "a", 1, "web", "app:2", state, None, None, restarts, failure, version, "t"  # type: ignore[arg-type]
    )  # fmt: skip


def device(name: str, version: int | None = 3, online: bool = True, **labels: str) -> Device:
    ack = None if version is None else Ack(version, True, 200, "t")
    payload = None if version is None else b'{"version": %d, "apps": {}}' % version
    return Device(
        name,
        availability="online" if online else "offline",
        ack=ack,
        target_payload=payload,
        info=DeviceInfo(device_id=name, labels=labels),
    )


def fleet(count: int, **kw: Any) -> dict[str, Device]:
    return {f"d{i:02d}": device(f"d{i:02d}", **kw) for i in range(count)}


def spec(**kw: Any) -> Spec:
    return Spec(name="r", target=RELEASE, **{"bake": 10.0, "progress_deadline": 60.0, **kw})


def report(devices: dict[str, Device], rollout: State, **kw: Any) -> dict[str, Device]:
    """Every published device reports its new version with the given status."""
    out = dict(devices)
    for r in rollout.records:
        if r.version is not None and r.sent:
            out[r.device] = replace(devices[r.device], services={"web": status(r.version, **kw)})
    return out


def test_phases_are_cumulative_and_always_end_with_the_whole_selection() -> None:
    assert plan(100, ["1", "10%", "50%", "100%"], []) == [1, 10, 50, 100]
    assert plan(5, ["1", "10%", "50%"], []) == [1, 3, 5]
    assert plan(3, ["1", "10%"], []) == [1, 3]
    assert plan(20, [], [1, 2]) == [1, 3, 7, 15, 20]


@pytest.mark.parametrize("bad", [["0"], ["x"], ["150%"], ["-1"]])
def test_a_phase_that_is_neither_a_count_nor_a_share_is_refused(bad: list[str]) -> None:
    with pytest.raises(RolloutError):
        plan(10, bad, [])


def test_the_selector_takes_id_globs_and_every_label() -> None:
    devices = {
        "berlin-1": device("berlin-1", site="berlin", hw="pi4"),
        "berlin-2": device("berlin-2", site="berlin", hw="pi3"),
        "paris-1": device("paris-1", site="paris", hw="pi4"),
    }
    assert select(devices, ["berlin-*"], {}) == ["berlin-1", "berlin-2"]
    assert select(devices, [], {"hw": "pi4"}) == ["berlin-1", "paris-1"]
    assert select(devices, ["berlin-*"], {"hw": "pi4"}) == ["berlin-1"]


def test_a_share_of_failures_counts_only_after_the_minimum_of_finished_devices() -> None:
    rule = spec(max_failures="10%", min_devices=5)
    assert not failure_limit_exceeded(rule, failed=1, finished=4)
    assert failure_limit_exceeded(rule, failed=1, finished=5)
    assert not failure_limit_exceeded(spec(max_failures="20%", min_devices=5), 1, 5)
    assert failure_limit_exceeded(spec(max_failures="2"), 3, 3)
    assert not failure_limit_exceeded(spec(max_failures="2"), 2, 3)


def test_intent_is_recorded_with_version_last_accepted_plus_one_before_publishing() -> None:
    devices = fleet(10)
    state = logic.start(spec(phases=["1", "100%"]), devices, T0)
    state, todo = logic.step(state, devices, T0)
    assert todo == ["d00"]
    record = state.records[0]
    assert (record.stage, record.version, record.sent) == ("updating", 4, False)
    assert state.previous[record.previous or ""] == {"apps": {}}
    doc, version = logic.payload_for(state, "d00")
    assert version == 4 and doc == RELEASE


def test_a_phase_starts_only_after_every_device_of_the_previous_one_baked() -> None:
    devices = fleet(4)
    state = logic.start(spec(phases=["1", "100%"]), devices, T0)
    state, todo = logic.step(state, devices, T0)
    state = logic.mark_sent(state, todo)
    devices = report(devices, state)
    state, todo = logic.step(state, devices, T0 + 1)
    assert (state.records[0].stage, todo, state.phase) == ("baking", [], 0)
    state, todo = logic.step(state, devices, T0 + 5)
    assert (todo, state.phase) == ([], 0)
    state, todo = logic.step(state, devices, T0 + 11.5)
    assert state.records[0].stage == "succeeded"
    assert (state.phase, todo) == (1, ["d01", "d02", "d03"])


def test_a_restart_during_the_bake_starts_the_bake_again() -> None:
    devices = fleet(1)
    state = logic.start(spec(), devices, T0)
    state, todo = logic.step(state, devices, T0)
    state = logic.mark_sent(state, todo)
    state, _ = logic.step(state, report(devices, state), T0 + 1)
    state, _ = logic.step(state, report(devices, state, restarts=1), T0 + 8)
    assert state.records[0].baking_since == T0 + 8
    state, _ = logic.step(state, report(devices, state, restarts=1), T0 + 12)
    assert state.records[0].stage == "baking"
    state, _ = logic.step(state, report(devices, state, restarts=1), T0 + 18.5)
    assert state.status == "succeeded"


@pytest.mark.parametrize("error", ["ErrImagePull", "CrashLoopBackOff", "StartFailure"])
def test_an_error_named_in_abort_on_fails_the_device_and_aborts_the_phase(error: str) -> None:
    devices = fleet(10)
    state = logic.start(spec(phases=["2", "100%"]), devices, T0)
    state, todo = logic.step(state, devices, T0)
    state = logic.mark_sent(state, todo)
    state, todo = logic.step(state, report(devices, state, state="error", error=error), T0 + 1)
    assert state.status == "aborted" and todo == []
    assert [r.reason for r in state.records[:2]] == [error, error]
    assert all(r.version is None for r in state.records[2:])


def test_an_error_not_named_in_abort_on_waits_until_the_progress_deadline() -> None:
    devices = fleet(1)
    rule = spec(abort_on=["ErrImagePull", "timeout"])
    state = logic.start(rule, devices, T0)
    state, todo = logic.step(state, devices, T0)
    state = logic.mark_sent(state, todo)
    broken = report(devices, state, state="error", error="ImagePullBackOff")
    state, _ = logic.step(state, broken, T0 + 60)
    assert state.status == "running"
    state, _ = logic.step(state, broken, T0 + 71)
    assert state.status == "aborted" and state.records[0].reason == "timeout"


def test_a_rejected_target_fails_the_device() -> None:
    devices = fleet(1)
    state = logic.start(spec(), devices, T0)
    state, todo = logic.step(state, devices, T0)
    state = logic.mark_sent(state, todo)
    devices["d00"] = replace(devices["d00"], ack=Ack(4, False, 403, "t"))
    state, _ = logic.step(state, devices, T0 + 1)
    assert state.status == "aborted" and state.records[0].reason == "Rejected403"


def test_max_in_flight_limits_the_devices_updating_at_once() -> None:
    devices = fleet(5)
    state = logic.start(spec(max_in_flight=2), devices, T0)
    state, todo = logic.step(state, devices, T0)
    assert todo == ["d00", "d01"]


def test_offline_devices_at_start_are_skipped_or_waited_for() -> None:
    devices = {**fleet(2), "d09": device("d09", online=False)}
    skipped = logic.start(spec(offline="skip"), devices, T0)
    assert [r.stage for r in skipped.records] == ["pending", "pending", "skipped"]
    waiting = logic.start(spec(offline="wait"), devices, T0)
    waiting, todo = logic.step(waiting, devices, T0)
    assert todo == ["d00", "d01"] and waiting.records[2].stage == "pending"
    devices["d09"] = replace(devices["d09"], availability="online")
    waiting, todo = logic.step(waiting, devices, T0 + 1)
    assert todo == ["d00", "d01", "d09"]  # the first two were never marked sent


def test_after_a_restart_intent_already_on_the_device_is_not_published_again() -> None:
    devices = fleet(3)
    state = logic.start(spec(), devices, T0)
    state, todo = logic.step(state, devices, T0)
    assert todo == ["d00", "d01", "d02"]
    # killed after publishing d00 and d01 but before storing that they were sent
    devices["d00"] = replace(devices["d00"], ack=Ack(4, True, 200, "t"))
    target = decode_target(b'{"version": 4, "apps": {}}')
    assert not isinstance(target, list)
    devices["d01"] = replace(devices["d01"], target=target)  # its retained target is version 4
    state = logic.reconcile(state, devices)
    _, todo = logic.step(state, devices, T0 + 1)
    assert todo == ["d02"]


def test_rollback_republishes_each_updated_devices_previous_target_as_a_higher_version() -> None:
    devices = fleet(4)
    state = logic.start(spec(phases=["2", "100%"], on_abort="rollback"), devices, T0)
    state, todo = logic.step(state, devices, T0)
    state = logic.mark_sent(state, todo)
    broken = report(devices, state, state="error", error="ErrImagePull")
    state, todo = logic.step(state, broken, T0 + 1)
    assert state.status == "rolling-back" and todo == ["d00", "d01"]
    doc, version = logic.payload_for(state, "d00")
    assert doc == {"apps": {}} and version == 5
    state = logic.mark_sent(state, todo)
    state, _ = logic.step(state, broken, T0 + 2)
    assert state.status == "rolling-back"
    # the previous release has no services: back as soon as the device accepted it
    back = {d: replace(broken[d], ack=Ack(5, True, 200, "t")) for d in ("d00", "d01")}
    state, _ = logic.step(state, {**broken, **back}, T0 + 3)
    assert state.status == "rolled-back"
    assert [r.stage for r in state.records] == ["reverted", "reverted", "pending", "pending"]


def test_control_requests_apply_once_and_only_where_they_make_sense() -> None:
    state = logic.start(spec(), fleet(2), T0)
    paused = logic.control(state, "pause", "a", T0)
    assert paused.status == "paused"
    assert logic.control(paused, "resume", "a", T0).status == "paused"  # same request id
    assert logic.control(paused, "resume", "b", T0).status == "running"
    assert logic.step(paused, fleet(2), T0)[1] == []
    done = replace(state, status="rolled-back")
    assert logic.control(done, "rollback", "c", T0).status == "rolled-back"


def test_the_state_survives_an_encode_decode_round_trip() -> None:
    devices = fleet(3)
    state, _ = logic.step(logic.start(spec(), devices, T0), devices, T0)
    assert decode(encode(state)) == state


def test_a_selector_matching_nothing_or_a_bad_abort_reason_is_refused() -> None:
    with pytest.raises(RolloutError, match="no device"):
        logic.start(spec(devices=["nope-*"]), fleet(2), T0)
    with pytest.raises(RolloutError, match="unknown"):
        logic.start(spec(abort_on=["Oops"]), fleet(2), T0)


def test_a_lease_is_free_when_absent_ours_or_expired() -> None:
    state = logic.start(spec(), fleet(1), T0)
    assert lease_free(state, "me", T0)
    held = replace(state, lease=Lease("other", T0 + 15))
    assert not lease_free(held, "me", T0 + 14.9)
    assert lease_free(held, "other", T0)
    assert lease_free(held, "me", T0 + 15)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("30s", 30.0), ("5m", 300.0)])
def test_durations_take_seconds_minutes_and_hours(text: str, seconds: float) -> None:
    assert duration(text) == seconds


def test_rollout_start_refuses_bad_input_with_exit_code_2_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = tmp_path / "r.json"
    release.write_text('{"apps": {"1": {"appId": 1, "appName": "a", "services": []}}}')
    url = ["--url", "mqtt://127.0.0.1:9"]  # nothing listens: input is checked first
    assert cli.main(["rollout", "start", str(release), "--name", "r", "--phases", "x", *url]) == 2
    assert "phase 'x'" in capsys.readouterr().err
    assert cli.main(["rollout", "start", str(release), "--name", "Bad!", *url]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"apps": {"1": {"appId": 1, "appName": "a", "services": [{"x": 1}]}}}')
    assert cli.main(["rollout", "start", str(bad), "--name", "r", *url]) == 2
    assert "invalid target" in capsys.readouterr().out
