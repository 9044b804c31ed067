"""Persistence: atomic writes, persist-before-act, and a damaged file never being fatal."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from fleet_agent import store
from fleet_agent.model import Target
from fleet_agent.store import TARGET_FILE, TargetStore, write_atomic

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
    persisted = msgspec.json.decode((tmp_path / TARGET_FILE).read_bytes(), type=Target)
    assert persisted == decision.target
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
