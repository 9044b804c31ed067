"""Pull progress (pure): the engine's pull stream combined over layers, and the 1 s gate."""

from __future__ import annotations

from typing import Any

from fleet_agent.model import Progress
from fleet_agent.ports import PullProgress
from fleet_agent.pull_progress import ProgressGate, PullTracker, percent
from fleet_agent.status import with_progress
from tests.unit.test_operator_render import status


def msg(layer: str, state: str, current: int | None = None, total: int | None = None) -> Any:
    doc: dict[str, Any] = {"status": state, "id": layer}
    if current is not None:
        doc["progressDetail"] = {"current": current, "total": total}
    return doc


def test_layers_are_combined_and_the_total_is_known_once_every_layer_has_a_size() -> None:
    tracker = PullTracker()
    assert tracker.feed({"status": "Pulling from fleet-test/big", "id": "1"}) is None
    assert tracker.feed(msg("a", "Pulling fs layer")) == PullProgress(0, None)
    assert tracker.feed(msg("b", "Pulling fs layer")) is None  # no change
    assert tracker.feed(msg("a", "Downloading", 100, 1000)) == PullProgress(100, None)
    assert tracker.feed(msg("b", "Downloading", 50, 500)) == PullProgress(150, 1500)
    assert tracker.feed(msg("a", "Download complete")) == PullProgress(1050, 1500)
    assert tracker.feed(msg("a", "Extracting", 10, 4000)) is None  # extraction is not download
    assert tracker.feed(msg("b", "Pull complete")) == PullProgress(1500, 1500)
    assert tracker.feed({"status": "Digest: sha256:..."}) is None


def test_layers_that_already_exist_do_not_count() -> None:
    tracker = PullTracker()
    tracker.feed(msg("a", "Pulling fs layer"))
    assert tracker.feed(msg("a", "Already exists")) is None  # nothing left to download
    assert tracker.feed(msg("b", "Downloading", 5, 10)) == PullProgress(5, 10)


def test_garbage_in_the_stream_is_ignored() -> None:
    tracker = PullTracker()
    for junk in (None, "x", {"id": 3}, {"status": "Downloading", "id": "a", "progressDetail": "?"}):
        tracker.feed(junk)
    assert tracker.progress() == PullProgress(0, None)


def test_percent_reaches_100_only_with_every_byte() -> None:
    assert percent(PullProgress(999, 1000)) == 99
    assert percent(PullProgress(1000, 1000)) == 100
    assert percent(PullProgress(5, None)) == 0


def test_the_gate_shows_a_new_value_at_most_once_a_second_and_only_on_change() -> None:
    gate = ProgressGate(1.0)
    assert gate.show(0.0) is None and not gate.pending()
    gate.offer(PullProgress(10, 100), 0.0)
    assert gate.show(0.5) is None  # a pull shorter than a second shows no progress
    assert gate.show(1.0) == Progress(10, 10, 100)
    gate.offer(PullProgress(20, 100), 1.2)
    assert gate.pending() and gate.due_in(1.5) == 0.5
    assert gate.show(1.5) == Progress(10, 10, 100)  # too early: the old value
    assert gate.show(2.0) == Progress(20, 20, 100)
    assert gate.show(5.0) == Progress(20, 20, 100) and gate.shown_at == 2.0  # no change
    gate.offer(PullProgress(100, 100), 5.0)
    assert gate.show(5.0) == Progress(100, 100, 100) and not gate.pending()


def test_the_percentage_never_goes_back_when_the_total_grows() -> None:
    gate = ProgressGate(0.0)
    gate.offer(PullProgress(50, 100), 0)
    gate.show(0)
    gate.offer(PullProgress(60, 400), 1)
    assert gate.show(1) == Progress(50, 60, 400)


def test_progress_is_part_of_a_status_only_while_it_downloads() -> None:
    shown = Progress(42, 42, 100)
    assert with_progress(status(state="downloading"), shown).progress == shown
    assert with_progress(status(state="running"), shown).progress is None
    assert with_progress(status(state="downloading"), None).progress is None
