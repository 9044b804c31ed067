"""The recorder's tables (SQLAlchemy Core) and their versioned migrations.

Every table has a natural key (a primary key or a unique constraint made of what the message
itself says, never a counter of ours), so writes are idempotent upserts: two recorders at once,
or one that reads the retained topics again after a restart, never add a row twice. Times are
UTC without a time zone (`timestamp` on PostgreSQL, ISO text on SQLite). The migrations are a
short list of our own, applied in order and recorded in `recorder_schema`: the schema is small,
and one table of versions is simpler to read than an Alembic tree. docs/recorder.md shows it all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

metadata = MetaData()
Json = JSON().with_variant(JSONB(), "postgresql")
NAME = String(64)

recorder_schema = Table(
    "recorder_schema",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime, nullable=False),
    Column("description", Text, nullable=False),
)

device_state = Table(
    "device_state",
    metadata,
    Column("device_id", NAME, primary_key=True),
    Column("availability", String(16)),
    Column("availability_since", DateTime),
    Column("target_version", Integer),
    Column("converged", Boolean),
    Column("counts", Json, nullable=False),
    Column("agent_version", String(64)),
    Column("labels", Json, nullable=False),
    Column("last_seen", DateTime),
    Column("service_errors", Json, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

service_status = Table(
    "service_status",
    metadata,
    Column("device_id", NAME, primary_key=True),
    Column("service", NAME, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("image", Text, nullable=False),
    Column("running_image", Text),
    Column("container_id", String(80)),
    Column("restart_count", Integer, nullable=False),
    Column("exit_code", Integer),
    Column("target_version", Integer),
    Column("error_type", String(32)),
    Column("error_message", Text),
    Column("retry_count", Integer),
    Column("exhausted", Boolean),
    Column("next_retry", DateTime),
    Column("updated_at", DateTime, nullable=False),
)

# One row per status change or error (the agent's history entries and live statuses, which
# carry the same timestamp): `error_type` is '' when healthy so the unique key holds.
transitions = Table(
    "transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", NAME, nullable=False),
    Column("service", NAME, nullable=False),
    Column("at", DateTime, nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("error_type", String(32), nullable=False),
    Column("message", Text),
    Column("retry_count", Integer),
    Column("restart_count", Integer),
    UniqueConstraint("device_id", "service", "at", "status", "error_type", name="transition_key"),
)

# One row per alert episode: raised at `raised_at` (the agent keeps it through escalation).
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", NAME, nullable=False),
    Column("service", NAME, nullable=False),
    Column("raised_at", DateTime, nullable=False, index=True),
    Column("first_type", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("retry_count", Integer),
    Column("updated_at", DateTime, nullable=False),
    Column("escalated_at", DateTime),
    Column("seconds_to_escalate", Float),
    Column("cleared_at", DateTime),
    Column("duration_seconds", Float),
    UniqueConstraint("device_id", "service", "raised_at", name="alert_key"),
)

acks = Table(
    "acks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", NAME, nullable=False),
    Column("received_at", DateTime, nullable=False, index=True),
    Column("code", Integer, nullable=False),
    Column("version", Integer),
    Column("accepted", Boolean, nullable=False),
    Column("errors", Json, nullable=False),
    UniqueConstraint("device_id", "received_at", "code", name="ack_key"),
)

TABLES = [device_state, service_status, transitions, alerts, acks]


def _v1(conn: Connection) -> None:
    for table in TABLES:
        table.create(conn, checkfirst=True)


Migration = tuple[int, str, Callable[[Connection], None]]
MIGRATIONS: list[Migration] = [
    (1, "device_state, service_status, transitions, alerts, acks", _v1),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "recorder_schema"):
        return 0
    versions = conn.execute(select(recorder_schema.c.version)).scalars().all()
    return max(versions, default=0)


def migrate(conn: Connection) -> list[int]:
    """Apply the migrations the database lacks, in order, inside the caller's transaction;
    returns the versions applied. On PostgreSQL an advisory lock makes two recorders starting
    at once take turns (SQLite serialises writers by itself)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7041501)"))
    recorder_schema.create(conn, checkfirst=True)
    have = current_version(conn)
    applied = []
    for version, description, step in MIGRATIONS:
        if version <= have:
            continue
        step(conn)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        conn.execute(
            insert(recorder_schema).values(version=version, applied_at=now, description=description)
        )
        applied.append(version)
    return applied
