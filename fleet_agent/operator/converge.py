"""Whether a device has reached an applied target (pure): the verdict of `apply --wait` and of
the demo. Only statuses at the applied version count, so the old target's `running` statuses
never pass for the new one.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from fleet_agent.operator.fleet import Device
from fleet_agent.operator.wire import ServiceStatus

Outcome = Literal["ok", "failed"]


class Verdict(NamedTuple):
    outcome: Outcome
    message: str


def current(device: Device | None, names: list[str], version: int | None) -> list[ServiceStatus]:
    """The statuses of `names` that already describe `version` (None: any version)."""
    if device is None:
        return []
    statuses = [device.services.get(name) for name in names]
    return [s for s in statuses if s is not None and version in (None, s.target_version)]


def _failure(status: ServiceStatus) -> str | None:
    if status.error is not None:
        return f"{status.service_name}: {status.error.type}: {status.error.message}"
    if status.service_status == "exited" and status.exit_code not in (None, 0):
        return f"{status.service_name}: exited with code {status.exit_code}"
    return None


def verdict(device: Device | None, names: list[str], version: int | None) -> Verdict | None:
    """`failed` as soon as one service of the target fails; `ok` once every one runs (or
    ended with exit code 0 under a restart policy that leaves it so); None while under way."""
    statuses = current(device, names, version)
    failures = [f for f in map(_failure, statuses) if f]
    if failures:
        return Verdict("failed", "; ".join(failures))
    if device is None or len(statuses) < len(names):
        return None
    if not names:
        at = device.state.target_version if device.state else None
        return Verdict("ok", "no services") if version in (None, at) else None
    settled = all(s.service_status in ("running", "exited") for s in statuses)
    if not settled:
        return None
    running = sum(s.service_status == "running" for s in statuses)
    done = len(statuses) - running
    text = f"{running} service{'s' if running != 1 else ''} running"
    return Verdict("ok", text + (f", {done} completed" if done else ""))
