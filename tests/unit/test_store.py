"""Persistence: atomic writes, persist-before-act, and a damaged file never being fatal."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import msgspec
import pytest

from fleet_agent import store
from fleet_agent.store import (
    MANUAL_STOPS_FILE,
    TARGET_FILE,
    ManualStops,
    Persisted,
    TargetStore,
    write_atomic,
)

from .factories import T0, encode, target_doc


def test_an_atomic_write_leaves_exactly_the_file_with_its_content(tmp_path: Path) -> None:
    path = tmp_path / "state" / "target.json"

    write_atomic(path, b"one")
    write_atomic(path, b"two")

    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["target.json"]


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "target.json"
    write_atomic(path, b"old")

    def crash(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, b"new")

    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.json"]


def test_an_accepted_target_is_persisted_before_offer_returns(tmp_path: Path) -> None:
    targets = TargetStore(tmp_path)

    decision = targets.offer(encode(target_doc(7)), T0)

    assert decision.ack.code == 200
    assert decision.target is not None
    persisted = msgspec.json.decode((tmp_path / TARGET_FILE).read_bytes(), type=Persisted)
    assert persisted == Persisted(decision.target, highest_version=7)
    assert targets.current() == decision.target


def test_a_target_that_cannot_be_persisted_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = TargetStore(tmp_path)

    def fail(path: Path, data: bytes) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(store, "write_atomic", fail)
    with pytest.raises(OSError, match="read-only"):
        targets.offer(encode(target_doc(7)), T0)

    assert targets.current() is None


def test_a_rejected_target_writes_nothing_and_keeps_the_current_one(tmp_path: Path) -> None:
    targets = TargetStore(tmp_path)
    first = targets.offer(encode(target_doc(7)), T0).target
    before = (tmp_path / TARGET_FILE).read_bytes()

    stale = targets.offer(encode(target_doc(6, imageName="other:1")), T0)
    broken = targets.offer(b"{", T0)

    assert (stale.ack.code, broken.ack.code) == (409, 400)
    assert (tmp_path / TARGET_FILE).read_bytes() == before
    assert targets.current() == first


def test_an_offer_whose_write_hangs_never_holds_up_readers_of_the_current_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = TargetStore(tmp_path)
    first = targets.offer(encode(target_doc(7)), T0).target
    writing, release = threading.Event(), threading.Event()
    real_write = store.write_atomic

    def slow_write(path: Path, data: bytes) -> None:  # an fsync on a slow SD card
        writing.set()
        release.wait(10)
        real_write(path, data)

    monkeypatch.setattr(store, "write_atomic", slow_write)
    offering = threading.Thread(target=targets.offer, args=(encode(target_doc(8)), T0))
    offering.start()
    assert writing.wait(10)
    seen: list[object] = []
    reader = threading.Thread(target=lambda: seen.append(targets.current()))
    reader.start()
    reader.join(5)
    answered = not reader.is_alive()
    release.set()
    offering.join(10)

    assert answered  # current() did not wait for the write
    assert seen == [first]  # and saw the old target: the new one is not acted on unpersisted
    current = targets.current()
    assert current is not None and current.version == 8


def test_the_persisted_target_is_what_runs_after_a_restart(tmp_path: Path) -> None:
    accepted = TargetStore(tmp_path).offer(encode(target_doc(7)), T0).target

    restarted = TargetStore(tmp_path)
    loaded = restarted.load()

    assert loaded == accepted
    assert restarted.current() == accepted


def test_a_replay_after_a_restart_is_recognised_as_a_replay(tmp_path: Path) -> None:
    payload = encode(target_doc(None))
    TargetStore(tmp_path).offer(payload, T0)

    restarted = TargetStore(tmp_path)
    restarted.load()
    decision = restarted.offer(payload, T0 + 1)

    assert (decision.ack.code, decision.target) == (200, None)


def test_a_store_without_a_persisted_target_loads_none(tmp_path: Path) -> None:
    targets = TargetStore(tmp_path / "never-written")

    assert targets.load() is None
    assert targets.current() is None


@pytest.mark.parametrize("content", [b'{"apps": {', b"[]", b"", b"\xff\xfe", b'{"apps": 5}'])
def test_a_corrupt_target_file_is_ignored_on_load(tmp_path: Path, content: bytes) -> None:
    (tmp_path / TARGET_FILE).write_bytes(content)
    targets = TargetStore(tmp_path)

    assert targets.load() is None
    assert targets.current() is None


def test_after_ignoring_a_corrupt_file_a_new_target_replaces_it(tmp_path: Path) -> None:
    (tmp_path / TARGET_FILE).write_bytes(b"garbage")
    targets = TargetStore(tmp_path)
    targets.load()

    decision = targets.offer(encode(target_doc(1)), T0)

    assert decision.target is not None
    assert TargetStore(tmp_path).load() == decision.target


def test_an_empty_payload_writes_nothing_and_keeps_the_current_target(tmp_path: Path) -> None:
    targets = TargetStore(tmp_path)
    first = targets.offer(encode(target_doc(7)), T0).target
    before = (tmp_path / TARGET_FILE).read_bytes()

    decision = targets.offer(b"", T0 + 1)

    assert decision.target is None
    assert (tmp_path / TARGET_FILE).read_bytes() == before
    assert targets.current() == first


# --- ManualStops -------------------------------------------------------------------------------


def marks_on_disk(state_dir: Path) -> dict[str, float]:
    return msgspec.json.decode((state_dir / MANUAL_STOPS_FILE).read_bytes(), type=dict[str, float])


def test_a_container_marked_as_stopped_by_hand_is_contained_and_no_other(tmp_path: Path) -> None:
    stops = ManualStops(tmp_path)
    assert "c-1" not in stops

    stops.add("c-1", T0)

    assert "c-1" in stops
    assert "c-2" not in stops
    assert marks_on_disk(tmp_path) == {"c-1": T0}


def test_marks_are_persisted_and_seen_by_a_new_instance_after_a_restart(tmp_path: Path) -> None:
    stops = ManualStops(tmp_path)
    stops.add("c-1", T0)
    stops.add("c-2", T0 + 5)

    restarted = ManualStops(tmp_path)

    assert ("c-1" in restarted, "c-2" in restarted, "c-3" in restarted) == (True, True, False)
    assert marks_on_disk(tmp_path) == {"c-1": T0, "c-2": T0 + 5}


def test_keep_only_drops_every_mark_of_a_container_not_given_and_persists_that(
    tmp_path: Path,
) -> None:
    stops = ManualStops(tmp_path)
    for n, container in enumerate(["c-1", "c-2", "c-3"]):
        stops.add(container, T0 + n)

    stops.keep_only({"c-2", "c-9"})

    assert ("c-1" in stops, "c-2" in stops, "c-3" in stops, "c-9" in stops) == (
        False,
        True,
        False,
        False,
    )
    assert marks_on_disk(tmp_path) == {"c-2": T0 + 1}
    assert "c-1" not in ManualStops(tmp_path)


def test_forget_since_drops_marks_made_at_or_after_the_moment_and_keeps_older_ones(
    tmp_path: Path,
) -> None:
    stops = ManualStops(tmp_path)
    stops.add("older", T0 - 0.001)
    stops.add("at", T0)
    stops.add("after", T0 + 30)

    stops.forget_since(T0)

    assert ("older" in stops, "at" in stops, "after" in stops) == (True, False, False)
    assert marks_on_disk(tmp_path) == {"older": T0 - 0.001}


def test_filtering_that_drops_nothing_writes_nothing(tmp_path: Path) -> None:
    stops = ManualStops(tmp_path)

    stops.keep_only(set())
    stops.forget_since(T0)

    assert not (tmp_path / MANUAL_STOPS_FILE).exists()


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[]", b'{"c-1": "yesterday"}', b"\xff\xfe", b'["c-1"]']
)
def test_a_corrupt_manual_stops_file_is_ignored_at_load(tmp_path: Path, content: bytes) -> None:
    (tmp_path / MANUAL_STOPS_FILE).write_bytes(content)

    stops = ManualStops(tmp_path)

    assert "c-1" not in stops
    stops.add("c-2", T0)
    assert marks_on_disk(tmp_path) == {"c-2": T0}


def test_a_missing_state_dir_loads_no_marks_and_is_created_by_the_first_mark(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "never-written"
    stops = ManualStops(state_dir)
    assert "c-1" not in stops

    stops.add("c-1", T0)

    assert marks_on_disk(state_dir) == {"c-1": T0}


def test_a_versionless_target_in_between_never_lets_an_older_version_back_in(
    tmp_path: Path,
) -> None:
    targets = TargetStore(tmp_path)
    assert targets.offer(encode(target_doc(7)), T0).ack.code == 200
    assert targets.offer(encode(target_doc(None, serviceId=2)), T0).ack.code == 200

    older = TargetStore(tmp_path)  # after a restart too
    older.load()
    assert older.offer(encode(target_doc(3)), T0).ack.code == 409
    assert older.offer(encode(target_doc(7)), T0).ack.code == 409
    assert older.offer(encode(target_doc(8)), T0).ack.code == 200


def test_marks_loaded_after_a_restart_are_older_than_any_outage_of_the_new_run(
    tmp_path: Path,
) -> None:
    ManualStops(tmp_path).add("c-1", 10_000.0)  # monotonic time of an earlier boot

    restarted = ManualStops(tmp_path)
    restarted.forget_since(40.0)  # an outage early in the new boot

    assert "c-1" in restarted
