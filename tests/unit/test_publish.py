"""Local mode: the status and the alerts the core decided, as files in the state dir."""

from __future__ import annotations

from pathlib import Path

import msgspec

from fleet_agent.feed import FeedState, conclude
from fleet_agent.publish import ALERTS_FILE, FilePublisher

from .factories import T0, report, status, status_error


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
