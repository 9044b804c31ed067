"""What one fleet change means for the database (pure): `fold` turns the client's `Change`s into
a `Batch` of rows keyed by their natural keys, so a batch never holds a row twice and the
writer can upsert it as it is.

Transitions come from the service's retained history (the agent's own log of status changes
and errors, its last 20 entries, read again after every reconnect: a restarted recorder fills
its gap from it), keyed by the entry's timestamp, so seeing an entry again adds nothing. Live
statuses add what a history entry lacks: the restart count at that transition (the status that
made the entry carries the same `updatedAt`). A status alone never makes a transition: the
agent may publish a status between its history entries (the same state, an earlier stamp).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import msgspec

from fleet_agent.operator.fleet import Change, Device
from fleet_agent.operator.wire import Ack, Alert, HistoryEntry, ServiceStatus

Row = dict[str, Any]
StatusKey = tuple[str, tuple[str, int, bool] | None]  # status, error (type, retries, exhausted)


def moment(stamp: str | None) -> dt.datetime | None:
    """A contract timestamp as a naive UTC datetime (exact to the microsecond), None if bad."""
    if not stamp:
        return None
    try:
        parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


@dataclass
class Batch:
    """Rows waiting to be written; each dict is keyed by the row's natural key."""

    states: dict[str, Row] = field(default_factory=dict)
    statuses: dict[tuple[str, str], Row | None] = field(default_factory=dict)  # None: delete
    transitions: dict[tuple[Any, ...], Row] = field(default_factory=dict)
    alerts: list[tuple[str, Row]] = field(default_factory=list)  # ("upsert"|"clear", row), ordered
    acks: dict[tuple[Any, ...], Row] = field(default_factory=dict)
    # a live status's restart count, for the transition its history entry records
    restarts: dict[tuple[str, str, dt.datetime], int] = field(default_factory=dict)

    def __len__(self) -> int:
        parts = (self.states, self.statuses, self.transitions, self.alerts, self.acks)
        sizes: tuple[Any, ...] = (*parts, self.restarts)
        return sum(len(part) for part in sizes)


def state_row(device: Device, now: float) -> Row:
    state, info = device.state, device.info
    errors = {
        name: {
            "type": s.error.type,
            "message": s.error.message,
            "since": s.error.timestamp,
            "retryCount": s.error.retry_count,
            "exhausted": s.error.exhausted,
            "nextRetry": s.error.next_retry,
        }
        for name, s in sorted(device.services.items())
        if s.error is not None
    }
    seen = [t for t in (device.last_report(), device.last_message_at) if t is not None]
    since = device.availability_since
    return {
        "device_id": device.device_id,
        "availability": device.availability,
        "availability_since": from_epoch(since if since is not None else now),
        "target_version": state.target_version if state else None,
        "converged": state.converged if state else None,
        "counts": dict(state.counts) if state else {},
        "agent_version": (info.agent_version if info else None)
        or (state.agent_version if state else None),
        "labels": dict(info.labels) if info else {},
        "last_seen": from_epoch(max(seen)) if seen else None,
        "service_errors": errors,
        "updated_at": from_epoch(now),
    }


def status_row(device_id: str, name: str, status: ServiceStatus) -> Row:
    error = status.error
    return {
        "device_id": device_id,
        "service": name,
        "status": status.service_status,
        "image": status.image_name,
        "running_image": status.running_image,
        "container_id": status.container_id,
        "restart_count": status.restart_count,
        "exit_code": status.exit_code,
        "target_version": status.target_version,
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "retry_count": error.retry_count if error else None,
        "exhausted": error.exhausted if error else None,
        "next_retry": moment(error.next_retry) if error else None,
        "updated_at": moment(status.updated_at) or dt.datetime(1970, 1, 1),
    }


def transition_row(device_id: str, name: str, entry: HistoryEntry, restarts: int | None) -> Row:
    return {
        "device_id": device_id,
        "service": name,
        "at": moment(entry.timestamp),
        "status": entry.service_status,
        "error_type": entry.error_type or "",
        "message": entry.message,
        "retry_count": entry.retry_count,
        "restart_count": restarts,
    }


def status_key(status: ServiceStatus) -> StatusKey:
    error = status.error
    return status.service_status, (
        error.type,
        error.retry_count,
        error.exhausted,
    ) if error else None


def alert_row(alert: Alert) -> Row | None:
    raised, updated = moment(alert.raised_at), moment(alert.updated_at)
    if raised is None or updated is None:
        return None
    critical = alert.severity == "critical"
    return {
        "device_id": alert.device_id,
        "service": alert.service,
        "raised_at": raised,
        "first_type": alert.type,
        "type": alert.type,
        "severity": alert.severity,
        "message": alert.message,
        "retry_count": alert.retry_count,
        "updated_at": updated,
        "escalated_at": updated if critical else None,
        "seconds_to_escalate": (updated - raised).total_seconds() if critical else None,
    }


def ack_row(device_id: str, ack: Ack) -> Row | None:
    received = moment(ack.received_at)
    if received is None:
        return None
    return {
        "device_id": device_id,
        "received_at": received,
        "code": ack.code,
        "version": ack.version,
        "accepted": ack.accepted,
        "errors": msgspec.to_builtins(ack.errors),
    }


def _add_transition(batch: Batch, row: Row) -> None:
    if row["at"] is None:
        return
    key = (row["device_id"], row["service"], row["at"], row["status"], row["error_type"])
    known = batch.transitions.get(key)
    if known is not None and row["restart_count"] is None:
        row = {**row, "restart_count": known["restart_count"]}
    batch.transitions[key] = row


def fold(batch: Batch, change: Change, last: dict[tuple[str, str], StatusKey], now: float) -> None:
    """Add what `change` means to `batch`. `last` is the state and error of each service's
    last status seen (kept by the caller) to tell a live transition from a mere update."""
    device = change.device
    if device is None or change.kind in ("problem", "events", "result", "target"):
        return
    batch.states[device.device_id] = state_row(device, now)
    name = change.service or ""
    if change.kind == "services":
        _fold_status(batch, change, device, last)
    elif change.kind == "history":
        _fold_history(batch, device, name)
    elif change.kind == "alerts":
        alert = device.alerts.get(name)
        if alert is None:
            clear = {"device_id": device.device_id, "service": name, "at": from_epoch(now)}
            batch.alerts.append(("clear", clear))
        elif (row := alert_row(alert)) is not None:
            batch.alerts.append(("upsert", row))
    elif change.kind == "ack" and device.ack is not None:
        row = ack_row(device.device_id, device.ack)
        if row is not None:
            batch.acks[(row["device_id"], row["received_at"], row["code"])] = row


def _fold_status(
    batch: Batch, change: Change, device: Device, last: dict[tuple[str, str], StatusKey]
) -> None:
    name = change.service or ""
    key = (device.device_id, name)
    status = device.services.get(name)
    if status is None:
        batch.statuses[key] = None
        last.pop(key, None)
        return
    batch.statuses[key] = status_row(device.device_id, name, status)
    at = moment(status.updated_at)
    if change.live and at is not None and last.get(key) != status_key(status):
        batch.restarts[(device.device_id, name, at)] = status.restart_count
    last[key] = status_key(status)


def _fold_history(batch: Batch, device: Device, name: str) -> None:
    status = device.services.get(name)
    for entry in device.history.get(name, []):
        same = status is not None and status.updated_at == entry.timestamp
        restarts = status.restart_count if status is not None and same else None
        _add_transition(batch, transition_row(device.device_id, name, entry, restarts))
