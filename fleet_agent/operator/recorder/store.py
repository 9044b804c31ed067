"""The database side of the recorder: open a database by URL, migrate it, write a `Batch` in
one transaction, enforce retention, and close alerts whose clearing the recorder missed.

Writes are upserts on natural keys (`INSERT ... ON CONFLICT`, which SQLite and PostgreSQL both
speak): a transition or ack already there is left alone, a device's state is replaced. Rows are
written in key order, so two recorders writing the same batch on PostgreSQL never deadlock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, create_engine, delete, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql.expression import case

from fleet_agent.operator.recorder import schema
from fleet_agent.operator.recorder.rows import Batch, Row
from fleet_agent.operator.recorder.schema import acks, alerts, device_state, service_status
from fleet_agent.operator.recorder.schema import transitions as transitions_table

DEFAULT_URL = "sqlite:///fleet-recorder.db"


class DatabaseError(Exception):
    """A database URL we cannot use (one line for a person)."""


def normalised(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3; SQLite and explicit drivers stay."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def open_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///path or postgresql://...), schema migrated."""
    url = normalised(url)
    if not url.startswith(("sqlite:", "postgresql+")):
        raise DatabaseError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")
    try:
        if url.startswith("sqlite:"):
            engine = create_engine(url, connect_args={"timeout": 60})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        with engine.begin() as conn:
            schema.migrate(conn)
    except ArgumentError as exc:
        raise DatabaseError(f"bad database URL {url!r}: {exc}") from exc
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (queries, dashboard) never block writes
    cursor.execute("PRAGMA busy_timeout=60000")  # a second recorder waits for its turn
    cursor.close()


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def write(engine: Engine, batch: Batch) -> None:
    """Write everything in `batch` in one transaction."""
    with engine.begin() as conn:
        _states(conn, [batch.states[k] for k in sorted(batch.states)])
        _statuses(conn, batch)
        _transitions(conn, [batch.transitions[k] for k in sorted(batch.transitions)])
        _restarts(conn, batch.restarts)
        for op, row in batch.alerts:
            (_raise if op == "upsert" else _clear)(conn, row)
        _acks(conn, [batch.acks[k] for k in sorted(batch.acks)])


def _states(conn: Connection, rows: list[Row]) -> None:
    if not rows:
        return
    stmt = _insert(conn, device_state)
    new = stmt.excluded
    same = device_state.c.availability.is_not_distinct_from(new.availability)
    values = {c.name: new[c.name] for c in device_state.columns if c.name != "device_id"}
    # availability_since moves only when the availability itself changes
    values["availability_since"] = case(
        (same, device_state.c.availability_since), else_=new.availability_since
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["device_id"], set_=values), rows)


def _statuses(conn: Connection, batch: Batch) -> None:
    keys = sorted(batch.statuses)
    rows = [r for k in keys if (r := batch.statuses[k]) is not None]
    gone = [k for k in keys if batch.statuses[k] is None]
    if rows:
        stmt = _insert(conn, service_status)
        values = {
            c.name: stmt.excluded[c.name]
            for c in service_status.columns
            if c.name not in ("device_id", "service")
        }
        key = ["device_id", "service"]
        conn.execute(stmt.on_conflict_do_update(index_elements=key, set_=values), rows)
    for device_id, name in gone:
        c = service_status.c
        conn.execute(delete(service_status).where(c.device_id == device_id, c.service == name))


def _transitions(conn: Connection, rows: list[Row]) -> None:
    if not rows:
        return
    stmt = _insert(conn, transitions_table)
    key = ["device_id", "service", "at", "status", "error_type"]
    known = transitions_table.c.restart_count
    fill = {"restart_count": func.coalesce(known, stmt.excluded.restart_count)}
    conn.execute(stmt.on_conflict_do_update(index_elements=key, set_=fill), rows)


def _restarts(conn: Connection, restarts: dict[tuple[str, str, dt.datetime], int]) -> None:
    t = transitions_table.c
    for (device_id, service, at), count in sorted(restarts.items()):
        where = (t.device_id == device_id, t.service == service, t.at == at)
        stmt = update(transitions_table).where(*where, t.restart_count.is_(None))
        conn.execute(stmt.values(restart_count=count))


def _raise(conn: Connection, row: Row) -> None:
    stmt = _insert(conn, alerts)
    new, old = stmt.excluded, alerts.c
    values = {
        "type": new.type,
        "severity": new.severity,
        "message": new.message,
        "retry_count": new.retry_count,
        "updated_at": new.updated_at,
        "escalated_at": func.coalesce(old.escalated_at, new.escalated_at),
        "seconds_to_escalate": func.coalesce(old.seconds_to_escalate, new.seconds_to_escalate),
    }
    key = ["device_id", "service", "raised_at"]
    conn.execute(stmt.on_conflict_do_update(index_elements=key, set_=values), [row])


def _clear(conn: Connection, row: Row) -> None:
    """Close the service's open alerts raised before `at` (the first recorder to see it wins)."""
    close_alerts(conn, row["device_id"], row["service"], row["at"])


def close_alerts(conn: Connection, device_id: str, service: str, at: dt.datetime) -> None:
    c = alerts.c
    open_ = and_(c.device_id == device_id, c.service == service, c.cleared_at.is_(None))
    for alert_id, raised in conn.execute(select(c.id, c.raised_at).where(open_)).all():
        when = max(at, raised)
        seconds = (when - raised).total_seconds()
        conn.execute(
            update(alerts)
            .where(c.id == alert_id, c.cleared_at.is_(None))
            .values(cleared_at=when, duration_seconds=seconds)
        )


def _acks(conn: Connection, rows: list[Row]) -> None:
    if rows:
        stmt = _insert(conn, acks).on_conflict_do_nothing()
        conn.execute(stmt, rows)


def close_missed(engine: Engine, active: set[tuple[str, str]], devices: Iterable[str]) -> int:
    """After a snapshot: alerts still open in the database that the devices no longer report
    were cleared while no recorder listened. Close each at the service's first healthy
    transition after it was raised (or now, when there is none). Returns how many."""
    seen = set(devices)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    closed = 0
    with engine.begin() as conn:
        c, t = alerts.c, transitions_table.c
        rows = conn.execute(
            select(c.device_id, c.service, c.raised_at).where(c.cleared_at.is_(None))
        )
        for device_id, service, raised in rows.all():
            if device_id not in seen or (device_id, service) in active:
                continue
            healthy = select(func.min(t.at)).where(
                t.device_id == device_id, t.service == service, t.error_type == "", t.at > raised
            )
            at = conn.execute(healthy).scalar() or now
            close_alerts(conn, device_id, service, at)
            closed += 1
    return closed


def enforce_retention(engine: Engine, days: float, now: dt.datetime | None = None) -> int:
    """Delete transitions, cleared alerts and acks older than `days`; returns rows deleted."""
    cutoff = (now or dt.datetime.now(dt.UTC).replace(tzinfo=None)) - dt.timedelta(days=days)
    with engine.begin() as conn:
        deleted = conn.execute(delete(transitions_table).where(transitions_table.c.at < cutoff))
        count = deleted.rowcount
        count += conn.execute(delete(alerts).where(alerts.c.cleared_at < cutoff)).rowcount
        count += conn.execute(delete(acks).where(acks.c.received_at < cutoff)).rowcount
    return int(count)
