"""What the agent remembers across its own restarts: counters, deadlines, alerts and history.

After each pass the services' histories (retry and restart counts, backoff deadlines) and the
feed (alerts with their `raisedAt`, each service's last transitions) are written to one file
in the state dir, atomically and only when their content changed (devices run on flash; a
pass that changes nothing writes nothing). The file stays small: only services of the target,
history capped. At start it is read back, so the first status after a restart carries the same
`restartCount` and the retained history keeps its entries.

Deadlines are monotonic, and the monotonic clock starts over when the device boots: the file
names the boot it was written in, and a file from an earlier boot has its deadlines moved by
the wall time that passed (never less than none).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import structlog
from msgspec.structs import replace

from fleet_agent.backoff import Backoff
from fleet_agent.feed import FeedState
from fleet_agent.ports import Clock
from fleet_agent.runtime import ServiceRuntime
from fleet_agent.store import write_atomic

MEMORY_FILE = "memory.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
log = structlog.get_logger(__name__)


class Snapshot(msgspec.Struct, frozen=True):
    boot_id: str
    saved_mono: float
    saved_wall: float
    runtimes: dict[str, ServiceRuntime]
    feed: FeedState


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _shifted(backoff: Backoff, delta: float) -> Backoff:
    if delta == 0 or backoff.last is None:
        return backoff
    last = replace(backoff.last, at=backoff.last.at + delta)
    retry = None if backoff.next_retry is None else backoff.next_retry + delta
    times = tuple(at + delta for at in backoff.times)
    return replace(backoff, last=last, next_retry=retry, times=times)


def shifted(runtime: ServiceRuntime, delta: float) -> ServiceRuntime:
    """The runtime with every monotonic time moved by `delta` seconds."""
    started = None if runtime.started_at is None else runtime.started_at + delta
    return replace(
        runtime,
        deploy=_shifted(runtime.deploy, delta),
        crash=_shifted(runtime.crash, delta),
        started_at=started,
    )


def _content(runtimes: dict[str, ServiceRuntime], state: FeedState) -> bytes:
    """What makes a change worth a write: no `updatedAt` stamps."""
    statuses = {n: replace(s, updated_at="") for n, s in state.statuses.items()}
    return msgspec.json.encode((runtimes, replace(state, statuses=statuses)))


class Memory:
    def __init__(self, state_dir: Path, clock: Clock, boot: str | None = None) -> None:
        self.path = state_dir / MEMORY_FILE
        self.clock = clock
        self.boot = boot_id() if boot is None else boot
        self._written: bytes | None = None

    def load(self, device_id: str) -> tuple[dict[str, ServiceRuntime], FeedState]:
        """What the last run remembered; nothing (and a log line) when unreadable."""
        empty: tuple[dict[str, ServiceRuntime], FeedState] = ({}, FeedState(device_id=device_id))
        try:
            snap = msgspec.json.decode(self.path.read_bytes(), type=Snapshot)
        except FileNotFoundError:
            return empty
        except (OSError, msgspec.MsgspecError) as exc:
            log.error("remembered state unreadable, ignored", path=str(self.path), error=str(exc))
            return empty
        if snap.feed.device_id not in ("", device_id):
            return empty  # another device's memory (a reused state dir)
        now, wall = self.clock.monotonic(), self.clock.wall()
        same_boot = bool(self.boot) and snap.boot_id == self.boot
        elapsed = now - snap.saved_mono if same_boot else max(0.0, wall - snap.saved_wall)
        delta = now - snap.saved_mono - elapsed
        runtimes = {name: shifted(rt, delta) for name, rt in snap.runtimes.items()}
        self._written = _content(runtimes, snap.feed) if delta == 0 else None
        return runtimes, snap.feed

    def save(self, runtimes: dict[str, ServiceRuntime], state: FeedState) -> None:
        content = _content(runtimes, state)
        if content == self._written:
            return
        snap = Snapshot(self.boot, self.clock.monotonic(), self.clock.wall(), runtimes, state)
        try:
            write_atomic(self.path, msgspec.json.encode(snap))
        except OSError as exc:  # a full disk must not stop reconciling: try again next change
            log.error("state not remembered", path=str(self.path), error=str(exc))
            return
        self._written = content
