"""Image pull progress (pure): the engine's pull stream, layers combined, and how often it is
shown.

`PullTracker` reads the engine's JSON messages of one pull (per layer: `Pulling fs layer`,
`Downloading` with `progressDetail`, `Download complete`, `Already exists`, ...) into one
`PullProgress` (bytes done and total over the layers that are downloaded). `ProgressGate` decides
what a service's status shows: the latest progress, taken at most once per interval (1 s) and
only when it changed, with a percentage that never goes back. The first value is shown one
interval after the pull began to report, so a pull that takes less than a second shows none.
"""

from __future__ import annotations

from typing import Any

from fleet_agent.model import Progress
from fleet_agent.ports import PullProgress

SHOW_INTERVAL = 1.0
_DONE = ("Verifying Checksum", "Download complete", "Extracting", "Pull complete")
_WAITING = ("Pulling fs layer", "Waiting")


class PullTracker:
    """One pull's layers: `feed` each message; it returns the combined progress when it changed."""

    def __init__(self) -> None:
        self._layers: dict[str, tuple[int, int | None]] = {}  # id -> (bytes done, total)
        self._last: PullProgress | None = None

    def feed(self, message: Any) -> PullProgress | None:
        if not isinstance(message, dict):
            return None
        layer, status = message.get("id"), message.get("status")
        if not isinstance(layer, str) or not isinstance(status, str):
            return None
        if status == "Already exists":
            self._layers.pop(layer, None)
        elif status.startswith(_WAITING):
            self._layers.setdefault(layer, (0, None))
        elif status.startswith("Downloading"):
            self._downloading(layer, message.get("progressDetail"))
        elif status.startswith(_DONE) and layer in self._layers:
            done, total = self._layers[layer]
            self._layers[layer] = (total or done, total or done)
        else:
            return None  # `Pulling from ...`, `Digest`, `Status`: not about a layer's bytes
        progress = self.progress()
        if progress is None or progress == self._last:
            return None  # nothing to download (every layer exists), or no change
        self._last = progress
        return progress

    def _downloading(self, layer: str, detail: Any) -> None:
        detail = detail if isinstance(detail, dict) else {}
        current, total = detail.get("current"), detail.get("total")
        done = current if isinstance(current, int) and current >= 0 else 0
        size = total if isinstance(total, int) and total > 0 else None
        self._layers[layer] = (min(done, size) if size else done, size)

    def progress(self) -> PullProgress | None:
        if not self._layers:
            return None
        layers = self._layers.values()
        done = sum(d for d, _ in layers)
        sizes = [t for _, t in layers]
        total = sum(t for t in sizes if t is not None) if all(sizes) else None
        return PullProgress(bytes_done=done, bytes_total=total)


def percent(progress: PullProgress) -> int:
    """0 to 100; 100 only when every byte is there; 0 while the total is unknown."""
    total = progress.bytes_total
    if not total:
        return 0
    if progress.bytes_done >= total:
        return 100
    return min(99, progress.bytes_done * 100 // total)


class ProgressGate:
    """What one pull shows: at most one new value per `interval`, and only on a change."""

    def __init__(self, interval: float = SHOW_INTERVAL) -> None:
        self.interval = interval
        self.latest: PullProgress | None = None
        self.shown: Progress | None = None
        self.shown_at: float | None = None
        self.began_at: float | None = None  # when the first progress came

    def offer(self, progress: PullProgress, now: float) -> None:
        if self.latest is None:
            self.began_at = now
        self.latest = progress

    def pending(self) -> bool:
        """The latest progress differs from what is shown."""
        if self.latest is None:
            return False
        return self.shown is None or self._next(self.latest) != self.shown

    def due_in(self, now: float) -> float:
        """Seconds until a new value may be shown (0: now)."""
        start = self.shown_at if self.shown_at is not None else self.began_at
        if start is None:
            return 0.0
        return max(0.0, start + self.interval - now)

    def show(self, now: float) -> Progress | None:
        """The progress to show at `now`, taking the latest one when it is due."""
        if self.latest is not None and self.pending() and self.due_in(now) == 0:
            self.shown = self._next(self.latest)
            self.shown_at = now
        return self.shown

    def _next(self, progress: PullProgress) -> Progress:
        floor = self.shown.percent if self.shown is not None else 0
        return Progress(
            percent=max(floor, percent(progress)),
            bytes_done=progress.bytes_done,
            bytes_total=progress.bytes_total,
        )
