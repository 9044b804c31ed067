"""Guarded rollouts over 100 real agents on simulated engines and one real Mosquitto, driven by
`fleet-agent rollout` as a real process. Bakes are compressed to 1-5 s; nothing asserts speed.

Every agent starts on release 1 (two services, image `sim/app:1`); the engine fails pulls of
`*:nope` and makes containers of `*crash*` images exit with code 3 after 0.5 s.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.fleet import Fleet, FleetWatcher, make_target, publish_targets
from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.rollout_model import State
from tests.integration.brokers import PrivateMosquitto
from tests.integration.rollouts import Recorder, rollout, rollout_process, write_release

SIM = "sim://?pull_delay=0.05&fail=*:nope&exit=*crash*:3:0.5"
AGENT: dict[str, Any] = {"backoff_initial": 1.0, "backoff_max": 2.0}
FAST = ["--progress-deadline", "60s", "--lease", "3s"]


@pytest.fixture
def recorder(broker: PrivateMosquitto) -> Iterator[Recorder]:
    instance = Recorder("127.0.0.1", broker.port)
    yield instance
    instance.close()


@pytest.fixture
def watcher(broker: PrivateMosquitto) -> Iterator[FleetWatcher]:
    instance = FleetWatcher(broker.url)
    yield instance
    instance.close()


@pytest.fixture
def fleet(broker: PrivateMosquitto, tmp_path: Path, watcher: FleetWatcher) -> Iterator[Fleet]:
    with Fleet([broker.url], 100, tmp_path / "agents", sim_url=SIM, **AGENT) as agents:
        on_release_1(broker, watcher, agents.device_ids)
        yield agents


def on_release_1(broker: PrivateMosquitto, watcher: FleetWatcher, devices: list[str]) -> None:
    publish_targets(broker.url, devices, make_target(1, services=2))
    assert watcher.wait_converged(devices, 1, timeout=120), watcher.missing(devices, 1)[:5]


def touched(recorder: Recorder, since: float) -> dict[str, list[int | None]]:
    versions: dict[str, list[int | None]] = defaultdict(list)
    for device, version, _ in recorder.published(since):
        versions[device].append(version)
    return dict(versions)


def test_a_good_release_goes_through_its_phases_in_order_each_after_the_previous_baked(
    broker: PrivateMosquitto, fleet: Fleet, recorder: Recorder, watcher: FleetWatcher,
    tmp_path: Path,
) -> None:  # fmt: skip
    release = write_release(tmp_path / "good.json", make_target(0, services=2, change=2))
    since = time.time()
    result = rollout(
        broker.url, "start", str(release), "--name", "good",
        "--phases", "1,10%,50%,100%", "--bake", "1s", *FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert watcher.wait_converged(fleet.device_ids, 2, timeout=60)
    state = recorder.wait_state("good", lambda s: s.lease is None)
    assert state.status == "succeeded" and state.phase_ends == [1, 10, 50, 100]
    assert {r.stage for r in state.records} == {"succeeded"}
    assert touched(recorder, since) == {d: [2] for d in fleet.device_ids}
    sent = {d: t for d, _, t in recorder.published(since)}
    for phase in range(1, 4):
        now = [r.device for r in state.records if r.phase == phase]
        before = [r.device for r in state.records if r.phase == phase - 1]
        baked = max(watcher.converged[(d, 2)] for d in before) + 1.0
        assert min(sent[d] for d in now) >= baked, f"phase {phase + 1} started before the bake"


def test_an_unpullable_release_aborts_in_its_first_phase_and_rolls_those_devices_back(
    broker: PrivateMosquitto, fleet: Fleet, recorder: Recorder, tmp_path: Path
) -> None:
    release = write_release(tmp_path / "bad.json", make_target(0, services=2, image="sim/app:nope"))
    since = time.time()
    result = rollout(
        broker.url, "start", str(release), "--name", "bad", "--phases", "5,100%",
        "--bake", "1s", "--abort-on", "ErrImagePull,ImagePullBackOff", "--on-abort", "rollback",
        *FAST,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    state = recorder.wait_state("bad", lambda s: s.lease is None)
    assert state.status == "rolled-back", state.reason
    first = sorted(fleet.device_ids)[:5]
    assert touched(recorder, since) == {d: [2, 3] for d in first}
    with FleetClient(Connection(mqtt_url=broker.url)) as client:
        devices = client.devices()
    for device_id in first:
        statuses = devices[device_id].services
        assert {s.image_name for s in statuses.values()} == {"sim/app:1"}
        assert all(s.service_status == "running" and s.error is None for s in statuses.values())
        assert {s.target_version for s in statuses.values()} == {3}
    assert {devices[d].accepted_version for d in fleet.device_ids if d not in first} == {1}


def test_a_crash_looping_release_aborts_on_crashloopbackoff_during_the_bake(
    broker: PrivateMosquitto, fleet: Fleet, recorder: Recorder, tmp_path: Path
) -> None:
    release = write_release(tmp_path / "crash.json", make_target(0, 2, image="sim/app:crash"))
    since = time.time()
    result = rollout(
        broker.url, "start", str(release), "--name", "crash", "--phases", "3,100%",
        "--bake", "5s", *FAST,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    state = recorder.wait_state("crash", lambda s: s.lease is None)
    assert state.status == "aborted" and "CrashLoopBackOff" in (state.reason or "")
    failed = [r for r in state.records if r.stage == "failed"]
    assert failed and {r.reason for r in failed} == {"CrashLoopBackOff"}
    assert all(r.baking_since is not None for r in failed)  # it ran, then crashed in the bake
    assert set(touched(recorder, since)) == set(sorted(fleet.device_ids)[:3])


def test_devices_offline_at_the_start_are_skipped_or_waited_for_as_configured(
    broker: PrivateMosquitto, recorder: Recorder, watcher: FleetWatcher, tmp_path: Path
) -> None:
    online = Fleet([broker.url], 95, tmp_path / "on", sim_url=SIM, run_id="on", **AGENT)
    offline = Fleet([broker.url], 5, tmp_path / "off", sim_url=SIM, run_id="off", **AGENT)
    online.start()
    offline.start()
    try:
        everyone = online.device_ids + offline.device_ids
        on_release_1(broker, watcher, everyone)
        offline.stop()
        release = write_release(tmp_path / "r.json", make_target(0, 2, change=2))
        since = time.time()
        args = ["--devices", "sim-*", "--phases", "50%,100%", "--bake", "1s", *FAST]
        result = rollout(broker.url, "start", str(release), "--name", "skip", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        state = recorder.wait_state("skip", lambda s: s.lease is None)
        skipped = {r.device for r in state.records if r.stage == "skipped"}
        assert skipped == set(offline.device_ids)
        assert set(touched(recorder, since)) == set(online.device_ids)

        waiting = rollout_process(
            broker.url, tmp_path / "wait.log", "start", str(release), "--name", "wait",
            "--offline", "wait", *args,
        )  # fmt: skip
        # the offline five sort first: phase 1 (50 devices) waits for them, phase 2 waits too
        recorder.wait_state("wait", lambda s: _stages(s, 0).get("succeeded") == 45)
        time.sleep(2.0)
        held = recorder.state("wait")
        assert held is not None and held.status == "running" and held.phase == 0
        assert _stages(held, 0).get("pending") == 5 and _stages(held, 1) == {"pending": 50}
        back = Fleet([broker.url], 5, tmp_path / "off", sim_url=SIM, run_id="off", **AGENT)
        back.start()
        try:
            assert waiting.wait(120) == 0, (tmp_path / "wait.log").read_text()
            assert watcher.wait_converged(offline.device_ids, 2, timeout=60)
            assert watcher.wait_converged(online.device_ids, 3, timeout=60)
        finally:
            back.stop()
    finally:
        online.stop()


def _stages(state: State, phase: int | None = None) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for record in state.records:
        if phase is None or record.phase == phase:
            counts[record.stage] += 1
    return dict(counts)


def test_a_controller_killed_mid_phase_resumes_without_touching_a_device_twice_or_skipping_one(
    broker: PrivateMosquitto, fleet: Fleet, recorder: Recorder, watcher: FleetWatcher,
    tmp_path: Path,
) -> None:  # fmt: skip
    release = write_release(tmp_path / "good.json", make_target(0, services=2, change=2))
    since = time.time()
    args = ["--phases", "10,50%,100%", "--bake", "2s", "--max-in-flight", "10", *FAST]
    log = tmp_path / "controller.log"
    first = rollout_process(broker.url, log, "start", str(release), "--name", "kill", *args)
    try:
        recorder.wait_state(
            "kill", lambda s: s.phase == 1 and 0 < _stages(s, 1).get("pending", 0) < 40
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed = recorder.state("kill")
    assert killed is not None and killed.status == "running" and killed.lease is not None
    result = rollout(broker.url, "resume", "kill", "--lease", "3s")
    assert result.returncode == 0, result.stdout + result.stderr + log.read_text()
    assert watcher.wait_converged(fleet.device_ids, 2, timeout=60)
    assert touched(recorder, since) == {d: [2] for d in fleet.device_ids}
    state = recorder.wait_state("kill", lambda s: s.lease is None)
    assert state.status == "succeeded"
