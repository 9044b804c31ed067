"""What a fleet rollout is, as data: its spec, the record of every device it covers, and the
whole retained state on `{p}/_rollouts/{name}`; plus the pure parts of starting one (selecting
devices, planning phases, reading `--max-failures`). No paho here: the controller
(`rollout_driver`) and its unit tests share these types. See docs/rollouts.md.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from fleet_agent.operator.fleet import Device

ABORT_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "StartFailure",
    "InvalidImageName",
    "timeout",
    "offline",
)
DEFAULT_ABORT_ON = ("ErrImagePull", "CrashLoopBackOff", "StartFailure", "InvalidImageName")
Status = Literal["running", "paused", "aborted", "rolling-back", "rolled-back", "succeeded"]
Stage = Literal[
    "pending",  # not published yet
    "updating",  # published (or about to be: `sent` False), not yet healthy
    "baking",  # every service runs at the new version; the bake clock runs
    "succeeded",
    "failed",  # `reason` says why
    "skipped",  # offline at the start with `--offline skip`
    "reverting",  # its previous target republished (rollback)
    "reverted",
    "revert-failed",
]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "skipped"})


class RolloutError(ValueError):
    """A spec that cannot be run (bad phases, nothing selected, ...): one line for a person."""


class Spec(msgspec.Struct, frozen=True, rename="camel"):
    name: str
    target: dict[str, Any]  # the release, without a version (each device gets its own)
    devices: list[str] = []  # id globs (any matches); empty: every device
    labels: dict[str, str] = {}  # every label must match
    # cumulative: counts ("1") or shares ("10%")
    phases: list[str] = msgspec.field(default_factory=lambda: ["100%"])
    exponential: list[float] = []  # [start, factor]: phases of start, start*factor, ...
    bake: float = 300.0
    max_in_flight: int = 0  # 0: the whole phase at once
    progress_deadline: float = 600.0
    abort_on: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ABORT_ON))
    max_failures: str = "0"  # "N" devices or "P%" of the phase's finished devices
    min_devices: int = 1  # finished devices in a phase before a ratio counts
    on_abort: Literal["pause", "rollback"] = "pause"
    offline: Literal["skip", "wait"] = "skip"


class Record(msgspec.Struct, rename="camel", omit_defaults=True):
    """One device of the rollout. `version` is set (with `sent` False) BEFORE its target is
    published: a restarted controller finds the intent and checks the device's retained target."""

    device: str
    phase: int
    stage: Stage = "pending"
    version: int | None = None
    previous: str | None = None  # key in State.previous ("" = it had no target)
    sent: bool = False
    published_at: float | None = None
    baking_since: float | None = None
    restarts: dict[str, int] = {}
    reason: str | None = None
    revert_version: int | None = None
    revert_sent: bool = False
    reverted_at: float | None = None


class Lease(msgspec.Struct, frozen=True, rename="camel"):
    owner: str
    expires_at: float


class State(msgspec.Struct, rename="camel", omit_defaults=True):
    spec: Spec
    status: Status = "running"
    phase: int = 0
    phase_ends: list[int] = []  # cumulative device counts per phase
    records: list[Record] = []
    previous: dict[str, Any] = {}  # previous targets (without version), deduplicated by hash
    lease: Lease | None = None
    control: str | None = None  # id of the last control request applied
    reason: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    format: int = 1


def select(devices: Mapping[str, Device], globs: list[str], labels: dict[str, str]) -> list[str]:
    """Device ids matching any glob (all when none) and every label, sorted."""

    def matches(device: Device) -> bool:
        if globs and not any(fnmatch.fnmatchcase(device.device_id, g) for g in globs):
            return False
        have = device.info.labels if device.info else {}
        return all(have.get(k) == v for k, v in labels.items())

    return sorted(d for d, device in devices.items() if matches(device))


def plan(count: int, phases: list[str], exponential: list[float]) -> list[int]:
    """Cumulative device counts per phase, strictly growing, the last one always `count`."""
    if count <= 0:
        return []
    ends: list[int] = []
    if exponential:
        start, factor = exponential[0], exponential[1] if len(exponential) > 1 else 2.0
        if start < 1 or factor <= 1:
            raise RolloutError("an exponential rate needs START >= 1 and FACTOR > 1")
        size, total = start, 0
        while total < count:
            total = min(count, total + math.ceil(size))
            ends.append(total)
            size *= factor
        return ends
    for raw in phases:
        ends.append(min(count, _amount(raw, count)))
    result: list[int] = []
    for end in [*ends, count]:
        if end > (result[-1] if result else 0):
            result.append(end)
    return result


def _amount(raw: str, count: int) -> int:
    text = raw.strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return max(1, math.ceil(count * share / 100))
        value = int(text)
        if value < 1:
            raise ValueError
        return value
    except ValueError:
        raise RolloutError(f"phase {raw!r}: a count >= 1 or a share like 10%") from None


def failure_limit_exceeded(spec: Spec, failed: int, finished: int) -> bool:
    """Has a phase with `failed` counted failures out of `finished` devices gone over the
    threshold? A ratio counts only once `min_devices` devices finished (as AWS IoT Jobs'
    minNumberOfExecutedThings)."""
    text = spec.max_failures.strip()
    if text.endswith("%"):
        if finished < max(1, spec.min_devices) or failed == 0:
            return False
        return failed * 100 / finished > float(text[:-1])
    return failed > int(text)


def check_spec(spec: Spec) -> None:
    """Raise `RolloutError` for a spec that cannot run."""
    plan(1000, spec.phases, spec.exponential)
    unknown = sorted(set(spec.abort_on) - set(ABORT_REASONS))
    if unknown:
        raise RolloutError(f"--abort-on: unknown reason(s) {', '.join(unknown)}")
    text = spec.max_failures.strip()
    try:
        value = float(text[:-1]) if text.endswith("%") else int(text)
    except ValueError:
        raise RolloutError("--max-failures: a number of devices or a share like 10%") from None
    if value < 0 or spec.bake < 0 or spec.progress_deadline <= 0 or spec.max_in_flight < 0:
        raise RolloutError("bake, progress deadline, max failures and max in flight are >= 0")


def target_key(doc: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    """A previous target without its version, and the hash it is kept under ("" for none)."""
    if doc is None:
        return "", None
    body = {k: v for k, v in doc.items() if k != "version"}
    digest = hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()[:16]
    return digest, body


def service_names(doc: dict[str, Any]) -> list[str]:
    apps = doc.get("apps")
    listed = list(apps.values()) if isinstance(apps, dict) else apps or []
    return sorted(s["serviceName"] for app in listed for s in app.get("services", []))


def encode(state: State) -> bytes:
    return msgspec.json.encode(state)


def decode(payload: bytes) -> State:
    return msgspec.json.decode(payload, type=State)
