"""The questions people ask the recorder, over the database: a report per device and service
(errors by type, time in error, restarts, worst alert), one service's history, and what is
failing. The same questions in plain SQL are in docs/recorder.md.

Time in error and restarts need each service's state at the start of the window, so the last
transition before it is read too; the arithmetic is plain Python over the rows (`summarise`),
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.engine import Engine

from fleet_agent.model import iso
from fleet_agent.operator.recorder.schema import alerts, service_status, transitions

RANK = {"warning": 1, "critical": 2}
Key = tuple[str, str]


@dataclass
class ServiceReport:
    device_id: str
    service: str
    errors: dict[str, int] = field(default_factory=dict)
    seconds_in_error: float = 0.0
    restarts: int = 0
    worst_alert: str | None = None  # "critical MaxRetriesExceeded"
    transitions: int = 0


def _baseline(engine: Engine, since: dt.datetime, device: str | None) -> list[Any]:
    """Each service's last transition before `since`."""
    t = transitions.c
    last = select(t.device_id, t.service, func.max(t.at).label("at")).where(t.at < since)
    if device:
        last = last.where(t.device_id == device)
    sub = last.group_by(t.device_id, t.service).subquery()
    query = select(transitions).join(
        sub, and_(t.device_id == sub.c.device_id, t.service == sub.c.service, t.at == sub.c.at)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).mappings())


def report(
    engine: Engine, since: dt.datetime, now: dt.datetime, device: str | None = None
) -> list[ServiceReport]:
    t, a = transitions.c, alerts.c
    window = select(transitions).where(t.at >= since, t.at <= now).order_by(t.at, t.id)
    raised = select(alerts).where(
        a.raised_at <= now, or_(a.cleared_at.is_(None), a.cleared_at >= since)
    )
    if device:
        window, raised = window.where(t.device_id == device), raised.where(a.device_id == device)
    with engine.connect() as conn:
        rows = list(conn.execute(window).mappings())
        alert_rows = list(conn.execute(raised).mappings())
    return summarise(_baseline(engine, since, device), rows, alert_rows, since, now)


def summarise(
    before: list[Any], rows: list[Any], alert_rows: list[Any], since: dt.datetime, now: dt.datetime
) -> list[ServiceReport]:
    """Pure: the report from the baseline rows, the window's rows (oldest first) and alerts."""
    out: dict[Key, ServiceReport] = {}
    state: dict[Key, tuple[dt.datetime, bool, int | None]] = {}  # since when, in error, restarts
    for row in before:
        key = (row["device_id"], row["service"])
        state[key] = (since, bool(row["error_type"]), row["restart_count"])
    for row in rows:
        key = (row["device_id"], row["service"])
        entry = out.setdefault(key, ServiceReport(*key))
        entry.transitions += 1
        if row["error_type"]:
            entry.errors[row["error_type"]] = entry.errors.get(row["error_type"], 0) + 1
        start, in_error, restarts = state.get(key, (row["at"], False, None))
        if in_error:
            entry.seconds_in_error += (row["at"] - start).total_seconds()
        count = row["restart_count"]
        if count is not None and restarts is not None:
            entry.restarts += count - restarts if count >= restarts else count
        state[key] = (row["at"], bool(row["error_type"]), count if count is not None else restarts)
    for key, (start, in_error, _) in state.items():
        if in_error:
            entry = out.setdefault(key, ServiceReport(*key))
            entry.seconds_in_error += (now - start).total_seconds()
    for row in alert_rows:
        key = (row["device_id"], row["service"])
        entry = out.setdefault(key, ServiceReport(*key))
        _worse(entry, row["severity"], row["type"])
    return [out[k] for k in sorted(out)]


def _worse(entry: ServiceReport, severity: str, kind: str) -> None:
    current = entry.worst_alert.split(" ", 1)[0] if entry.worst_alert else None
    if current is None or RANK.get(severity, 0) > RANK.get(current, 0):
        entry.worst_alert = f"{severity} {kind}"


def history(
    engine: Engine, device: str, service: str, since: dt.datetime | None = None, limit: int = 200
) -> list[Any]:
    """The service's transitions, oldest first (the newest `limit` of them)."""
    t = transitions.c
    query = select(transitions).where(t.device_id == device, t.service == service)
    if since is not None:
        query = query.where(t.at >= since)
    query = query.order_by(t.at.desc(), t.id.desc()).limit(limit)
    with engine.connect() as conn:
        return list(reversed(list(conn.execute(query).mappings())))


def _stamp(moment: dt.datetime | None) -> str | None:
    return iso(moment.replace(tzinfo=dt.UTC).timestamp()) if moment else None


PAGE_MAX = 200


def _alert_doc(r: Any) -> dict[str, Any]:
    """An alert row in the dashboard's keys (the contract's alert names where there is one)."""
    return {
        "raisedAt": _stamp(r["raised_at"]),
        "firstType": r["first_type"],
        "type": r["type"],
        "severity": r["severity"],
        "escalatedAt": _stamp(r["escalated_at"]),
        "secondsToEscalate": r["seconds_to_escalate"],
        "clearedAt": _stamp(r["cleared_at"]),
        "durationSeconds": r["duration_seconds"],
    }


def drawer(
    engine: Engine, device: str, service: str, limit: int = 200
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For the dashboard's drawer: the service's recorded history, newest first, in the
    contract's history keys, and its past alerts (newest first) with their durations."""
    entries = [
        {
            "timestamp": _stamp(r["at"]),
            "serviceStatus": r["status"],
            "errorType": r["error_type"] or None,
            "message": r["message"],
            "retryCount": r["retry_count"],
        }
        for r in reversed(history(engine, device, service, limit=limit))
    ]
    a = alerts.c
    query = select(alerts).where(a.device_id == device, a.service == service)
    with engine.connect() as conn:
        found = conn.execute(query.order_by(a.raised_at.desc()).limit(50)).mappings().all()
    return entries, [_alert_doc(r) for r in found]


def _words(text: str) -> Any:
    """Every word of `text` in the device, service, type, first type or severity (any case)."""
    a = alerts.c
    columns = (a.device_id, a.service, a.type, a.first_type, a.severity)
    clauses = []
    for word in text.lower().split():
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(or_(*(func.lower(c).like(pattern, escape="\\") for c in columns)))
    return and_(true(), *clauses)


def _cursor(text: str) -> tuple[dt.datetime, int]:
    """`RAISED~ID` (what `past_alerts_page` hands out) back to a time and an id."""
    at, _, last_id = text.partition("~")
    try:
        return dt.datetime.fromisoformat(at).replace(tzinfo=None), int(last_id)
    except ValueError:
        raise ValueError(f"not a cursor of this list: {text[:60]!r}") from None


def past_alerts_page(
    engine: Engine, limit: int = 50, before: str | None = None, text: str = ""
) -> tuple[list[dict[str, Any]], str | None]:
    """The fleet's cleared alerts, newest raised first, `limit` at a time (1 to PAGE_MAX), only
    those with every word of `text` in their device, service, types or severity. `before` is
    the cursor the previous page returned; returns the page and the next page's cursor (None:
    that was the last). ValueError for a cursor that is not one of ours."""
    a = alerts.c
    query = select(alerts).where(a.cleared_at.is_not(None), _words(text))
    if before is not None:
        at, last_id = _cursor(before)
        query = query.where(or_(a.raised_at < at, and_(a.raised_at == at, a.id < last_id)))
    limit = max(1, min(limit, PAGE_MAX))
    query = query.order_by(a.raised_at.desc(), a.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        found = conn.execute(query).mappings().all()
    page = found[:limit]
    docs = [{"device": r["device_id"], "service": r["service"]} | _alert_doc(r) for r in page]
    last = page[-1] if len(found) > limit else None
    return docs, f"{last['raised_at'].isoformat()}~{last['id']}" if last else None


@dataclass
class Failing:
    device_id: str
    service: str
    status: str | None  # now (None: the service left the target)
    error_type: str | None  # now
    errors: int  # error transitions in the window
    last_error: str | None
    last_error_at: dt.datetime | None


def failing(engine: Engine, since: dt.datetime) -> list[Failing]:
    """Services in error now, or with an error since `since`."""
    t = transitions.c
    recent = (
        select(t.device_id, t.service, func.count().label("n"), func.max(t.at).label("last"))
        .where(t.at >= since, t.error_type != "")
        .group_by(t.device_id, t.service)
    )
    with engine.connect() as conn:
        counts = {(r.device_id, r.service): (r.n, r.last) for r in conn.execute(recent)}
        now = {(r.device_id, r.service): r for r in conn.execute(select(service_status))}
        last_types: dict[Key, str] = defaultdict(str)
        for key, (_, last) in counts.items():
            query = select(t.error_type).where(
                t.device_id == key[0], t.service == key[1], t.at == last, t.error_type != ""
            )
            last_types[key] = conn.execute(query).scalar() or ""
    keys = set(counts) | {k for k, r in now.items() if r.error_type}
    out = []
    for key in sorted(keys):
        current = now.get(key)
        n, last = counts.get(key, (0, None))
        out.append(
            Failing(
                *key,
                status=current.status if current else None,
                error_type=current.error_type if current else None,
                errors=n,
                last_error=last_types.get(key) or (current.error_type if current else None),
                last_error_at=last,
            )
        )
    return out
