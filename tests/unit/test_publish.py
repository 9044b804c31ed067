"""Local mode: the status and the alerts the core decided, as files in the state dir."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from fleet_agent.feed import FeedState, conclude
from fleet_agent.publish import ALERTS_FILE, STATUS_FILE, FilePublisher
from fleet_agent.store import TargetStore

from .factories import T0, encode, report, status, status_error, target_doc


def test_local_mode_writes_the_active_alerts_and_clears_them_on_recovery(tmp_path: Path) -> None:
    publisher = FilePublisher(tmp_path)
    failing = status("nodered", "error", status_error(), container_id=None)
    state, raised = conclude(FeedState(), report(failing), T0)
    _, recovered = conclude(state, report(status(at=T0 + 30)), T0 + 30)

    publisher.publish(raised)
    written = msgspec.json.decode((tmp_path / ALERTS_FILE).read_bytes())
    publisher.publish(recovered)

    assert written["nodered"]["type"] == "ImagePullBackOff"
    assert written["nodered"]["severity"] == "warning"
    assert msgspec.json.decode((tmp_path / ALERTS_FILE).read_bytes()) == {}


def test_unchanged_alerts_are_not_written_again(tmp_path: Path) -> None:
    publisher = FilePublisher(tmp_path)
    failing = status("nodered", "error", status_error(), container_id=None)
    _, raised = conclude(FeedState(), report(failing), T0)
    publisher.publish(raised)
    (tmp_path / ALERTS_FILE).unlink()

    publisher.publish(raised)

    assert not (tmp_path / ALERTS_FILE).exists()


def test_status_files_are_replaced_whole_without_waiting_for_the_disk_but_a_target_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    publisher = FilePublisher(tmp_path)
    failing = status("nodered", "error", status_error(), container_id=None)
    _, raised = conclude(FeedState(), report(failing), T0)

    publisher.publish(raised)
    assert synced == []  # what a pass saw: the next pass writes it again
    assert msgspec.json.decode((tmp_path / STATUS_FILE).read_bytes())["services"]["nodered"]
    assert list(tmp_path.glob(".*")) == []  # no temporary file left behind

    TargetStore(tmp_path).offer(encode(target_doc(7)), T0)
    assert len(synced) == 2  # the target: the file and its folder, before anything acts on it
