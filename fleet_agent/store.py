"""Persistence in the state dir: the accepted target survives crashes, reboots and lost links.

Every write is atomic (temp file in the same folder, fsync, rename, fsync of the folder), so a
crash at any point leaves either the old file or the new one, never a torn one. The target is
written before it is acted on; at start-up it is what runs until a newer one arrives.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from fleet_agent.admission import Admission
from fleet_agent.intake import DEFAULT_MAX_BYTES, Decision, decide
from fleet_agent.model import MAX_SAFE_INT, Target
from fleet_agent.validate import DEFAULT_MAX_SERVICES

TARGET_FILE = "target.json"
MANUAL_STOPS_FILE = "manual-stops.json"
log = structlog.get_logger(__name__)


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` whole (a reader sees the old content or the new). `durable`: on disk
    before this returns (fsync of the file and its folder); without it, a power cut may leave
    the old content (what a pass rewrites anyway), and the engine's own writes never queue
    behind ours."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except FileNotFoundError:  # the folder is made only when missing (not a mkdir every write)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Persisted(msgspec.Struct, frozen=True, rename="camel"):
    """What target.json holds: the accepted target and the highest version ever accepted."""

    target: Target
    highest_version: int | None = None


def _without_poisoned_highest(persisted: Persisted) -> Persisted:
    """A highest version no target may carry (10^400, accepted before versions were bounded)
    would refuse every normal version with 409 for good: it is dropped, with a warning."""
    highest = persisted.highest_version
    if highest is None or 0 <= highest <= MAX_SAFE_INT:
        return persisted
    log.warning("persisted highest version out of bounds, ignored", highest=str(highest)[:20])
    return Persisted(persisted.target, persisted.target.version)


class TargetStore:
    """The accepted target, in memory and on disk, safe to share between threads."""

    def __init__(self, state_dir: Path, admission: Admission | None = None) -> None:
        self.path = state_dir / TARGET_FILE
        self.admission = admission
        self._lock = threading.Lock()  # the target and highest version, swapped together
        self._offering = threading.Lock()  # one offer at a time, decided from what is current
        self._target: Target | None = None
        self._highest: int | None = None

    def load(self) -> Target | None:
        """Read the persisted target; a damaged file is reported and ignored, never fatal."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            persisted = msgspec.json.decode(data, type=Persisted)
        except msgspec.MsgspecError as exc:
            log.error("persisted target unreadable, ignored", path=str(self.path), error=str(exc))
            return None
        persisted = _without_poisoned_highest(persisted)
        denied = self.admission.violations(persisted.target) if self.admission else []
        if denied:  # the policy was tightened since: never run what it now forbids
            errors = [f"{e.path}: {e.message}" for e in denied]
            log.error("persisted target breaks the device policy, ignored", errors=errors)
            with self._lock:
                self._highest = persisted.highest_version
            return None
        with self._lock:
            self._target, self._highest = persisted.target, persisted.highest_version
        return persisted.target

    def current(self) -> Target | None:
        with self._lock:
            return self._target

    def offer(
        self,
        payload: bytes,
        now: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_services: int = DEFAULT_MAX_SERVICES,
    ) -> Decision:
        """Decide on a received target and, when it is taken, persist it before anything acts.
        Offers take turns, but the signature checks, path resolution and fsync run outside the
        lock `current()` takes: a pass or a command never waits for them. The new target is
        swapped in only once it is on disk."""
        with self._offering:
            with self._lock:
                current, highest = self._target, self._highest
            decision = decide(
                payload, current, now, max_bytes, highest, self.admission, max_services
            )
            if decision.target is not None:
                versions = [v for v in (decision.target.version, highest) if v is not None]
                highest = max(versions, default=None)
                write_atomic(self.path, msgspec.json.encode(Persisted(decision.target, highest)))
                with self._lock:
                    self._target, self._highest = decision.target, highest
            return decision


class ManualStops:
    """Containers someone stopped by hand through the engine, kept across agent restarts.

    Under `unless-stopped` such a container stays stopped, as Docker would keep it. Markers
    from just before an engine outage are dropped: an engine shutting down stops every
    container the same way a person would, and that must not keep services down.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / MANUAL_STOPS_FILE
        self._lock = threading.Lock()
        self._marks: dict[str, float] = {}
        try:
            marks = msgspec.json.decode(self.path.read_bytes(), type=dict[str, float])
        except (FileNotFoundError, msgspec.MsgspecError):
            marks = {}
        # Times are monotonic, of the run (maybe the boot) that made them: to this run every
        # loaded mark is older than anything it sees, so no outage forgets one.
        self._marks = dict.fromkeys(marks, 0.0)

    def __contains__(self, container: str) -> bool:
        with self._lock:
            return container in self._marks

    def add(self, container: str, at: float) -> None:
        with self._lock:
            self._marks[container] = at
            self._save()

    def discard(self, container: str) -> None:
        self._filter(lambda c, _: c != container)

    def keep_only(self, containers: set[str]) -> None:
        """Forget every container not given."""
        self._filter(lambda container, _: container in containers)

    def forget_since(self, moment: float) -> None:
        self._filter(lambda _, at: at < moment)

    def _filter(self, keep: Callable[[str, float], bool]) -> None:
        with self._lock:
            marks = {c: at for c, at in self._marks.items() if keep(c, at)}
            if marks != self._marks:
                self._marks = marks
                self._save()

    def _save(self) -> None:
        try:
            write_atomic(self.path, msgspec.json.encode(self._marks))
        except OSError as exc:  # a full disk must not stop reconciling: keep them in memory
            log.error("stops by hand not saved", path=str(self.path), error=str(exc))
