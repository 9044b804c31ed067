"""What the operator commands show, as plain data (pure): status rows, relative times, the
history timeline with repeated events folded, the JSON document of `status -o json`.

Drawing (rich tables, live views) is done by the commands; everything decided about the
content is here, with `now` passed in, so it is tested without a terminal or a broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from fleet_agent.model import iso
from fleet_agent.operator.fleet import Device, parse_time
from fleet_agent.operator.wire import AGENT, HistoryEntry, ServiceStatus

COLUMNS = (
    "DEVICE",
    "AVAILABILITY",
    "SERVICE",
    "STATUS",
    "REASON",
    "RETRIES",
    "NEXT RETRY",
    "IMAGE",
    "AGE",
)
NONE = "-"


def duration(seconds: float) -> str:
    """kubectl's short durations: `42s`, `3m12s`, `15m`, `3h5m`, `2d`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes and hours < 10 else f"{hours}h"
    return f"{hours // 24}d"


def relative(stamp: str | float | None, now: float) -> str:
    """`in 42s` for the future, `3m ago` for the past, `-` when unknown."""
    moment = parse_time(stamp) if isinstance(stamp, str) or stamp is None else stamp
    if moment is None:
        return NONE
    delta = moment - now
    return f"in {duration(delta)}" if delta > 0.5 else f"{duration(-delta)} ago"


def availability(device: Device, now: float, short: bool = False) -> str:
    """`online`, `offline (for 5m)` when the change was seen, `offline (last report 2h)` when
    only the retained value is known, `unknown`; `short`: `offline 5m` for tables."""
    if device.availability == "online":
        return "online"
    if device.availability == "offline":
        since = device.availability_since or device.last_report()
        if not since:
            return "offline"
        if short:
            return f"offline {duration(now - since)}"
        label = "for" if device.availability_since else "last report"
        return f"offline ({label} {duration(now - since)})"
    return "unknown"


def reason(status: ServiceStatus) -> str:
    if status.error is not None:
        return status.error.type
    if status.service_status == "exited" and status.exit_code is not None:
        return f"exit code {status.exit_code}"
    return NONE


def retries(status: ServiceStatus) -> str:
    error = status.error
    return f"{error.retry_count}/{error.max_retries}" if error else NONE


def next_retry(status: ServiceStatus, now: float) -> str:
    error = status.error
    if error is None:
        return NONE
    if error.exhausted:
        return "exhausted"
    return relative(error.next_retry, now) if error.next_retry else "never"


def state_text(status: ServiceStatus) -> str:
    progress = status.progress
    if status.service_status == "downloading" and progress is not None:
        return f"downloading {progress.percent}%"
    return status.service_status


def service_row(device: Device, status: ServiceStatus, now: float) -> tuple[str, ...]:
    return (
        device.device_id,
        availability(device, now, short=True),
        status.service_name,
        state_text(status),
        reason(status),
        retries(status),
        next_retry(status, now),
        status.image_name,
        relative(status.updated_at, now).removesuffix(" ago"),
    )


def device_rows(device: Device, now: float) -> list[tuple[str, ...]]:
    """One row per service; a device without services (or with only a device alert) gets a
    row of its own, so it is never missing from the table."""
    rows = [service_row(device, s, now) for _, s in sorted(device.services.items())]
    alert = device.agent_alert
    if alert is not None:
        age = relative(alert.updated_at, now).removesuffix(" ago")
        where = (device.device_id, availability(device, now, short=True), AGENT)
        rows.append((*where, "alert", alert.type, NONE, NONE, NONE, age))
    if not rows:
        rows.append((device.device_id, availability(device, now, short=True), *(NONE,) * 7))
    return rows


def in_trouble(device: Device) -> bool:
    """What makes `status` exit 1: a service in error, a device alert, or not online."""
    return device.in_error or not device.online


def summary_line(device: Device, now: float) -> str:
    """One line per device, for fleets too large for a row per service."""
    counts: dict[str, int] = {}
    for status in device.services.values():
        counts[status.service_status] = counts.get(status.service_status, 0) + 1
    parts = [f"{n} {state}" for state, n in sorted(counts.items())] or ["no services"]
    failing = [
        f"{s.service_name}: {s.error.type} {retries(s)} {next_retry(s, now)}"
        for s in device.services.values()
        if s.error is not None
    ]
    if device.agent_alert is not None:
        failing.append(f"{AGENT}: {device.agent_alert.type}")
    text = f"{device.device_id}  {availability(device, now)}  {', '.join(parts)}"
    return text + (f"  [{'; '.join(failing)}]" if failing else "")


class Fold(msgspec.Struct, frozen=True):
    """Consecutive history entries of one episode folded: `(x5 over 2m)`.

    An episode is a run of entries with the same error (type and message), whatever the status
    in between (a backoff alternates `downloading` and `error`), or of the same healthy status.
    `count` is how many failed attempts (`error` entries) it holds, else how many entries."""

    first: HistoryEntry
    last: HistoryEntry
    entries: int
    failures: int

    @property
    def count(self) -> int:
        return self.failures or self.entries

    def label(self) -> str:
        if self.count == 1:
            return ""
        start, end = parse_time(self.first.timestamp), parse_time(self.last.timestamp)
        span = duration(end - start) if start is not None and end is not None else "?"
        return f"(x{self.count} over {span})"


def _episode(entry: HistoryEntry) -> tuple[str | None, ...]:
    if entry.error_type is not None:
        return (entry.error_type, entry.message)
    return (None, entry.service_status)


def fold(history: Iterable[HistoryEntry]) -> list[Fold]:
    folds: list[Fold] = []
    for entry in history:
        failed = int(entry.service_status == "error")
        if folds and _episode(folds[-1].last) == _episode(entry):
            top = folds[-1]
            folds[-1] = Fold(top.first, entry, top.entries + 1, top.failures + failed)
        else:
            folds.append(Fold(entry, entry, 1, failed))
    return folds


def device_document(device: Device, now: float) -> dict[str, Any]:
    """Everything known about a device, for `-o json` (camelCase, contract payloads as-is)."""
    doc: dict[str, Any] = {
        "deviceId": device.device_id,
        "availability": device.availability,
        "availabilitySince": _iso(device.availability_since),
        "lastReport": _iso(device.last_report()),
        "inError": device.in_error,
    }
    builtins = msgspec.to_builtins
    for key in ("state", "info", "ack", "target", "summary"):
        value = getattr(device, key)
        doc[key] = builtins(value) if value is not None else None
    doc["services"] = {name: builtins(s) for name, s in sorted(device.services.items())}
    doc["alerts"] = {name: builtins(a) for name, a in sorted(device.alerts.items())}
    doc["history"] = {name: builtins(h) for name, h in sorted(device.history.items())}
    doc["problems"] = dict(device.problems)
    doc["checkedAt"] = iso(now)
    return doc


def _iso(moment: float | None) -> str | None:
    return iso(moment) if moment is not None else None
