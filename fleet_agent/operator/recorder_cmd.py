"""`fleet-agent recorder [--db URL]` records the fleet into a database until stopped;
`recorder report | history | failing` ask it questions. SQLAlchemy (and psycopg for
PostgreSQL) come with the `recorder` extra and are imported only once the arguments are read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from fleet_agent.operator import connection

PROG = "fleet-agent recorder"
DB_ENV = "FLEET_RECORDER_DB"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """`90s`, `15m`, `24h`, `30d` (or plain seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (like 90s, 15m, 24h, 30d)")
    return float(match[1]) * UNITS[match[2] or "s"]


def _db(parser: argparse.ArgumentParser, query: bool = False) -> None:
    """`--db` on the command and on each query: a query's own default is SUPPRESS, so
    `recorder --db URL report` keeps the URL rather than the query's default replacing it."""
    parser.add_argument(
        "--db",
        default=argparse.SUPPRESS
        if query
        else os.environ.get(DB_ENV, "sqlite:///fleet-recorder.db"),
        help=f"database URL: sqlite:///PATH or postgresql://... (default ${DB_ENV}, "
        "else sqlite:///fleet-recorder.db)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _db(parser)
    parser.add_argument("--config", type=Path, help="TOML settings file (the agent's keys)")
    parser.add_argument("--url", help="broker URL (wins over FLEET_AGENT_MQTT_URL)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the broker")
    parser.add_argument(
        "--retention", type=duration, default=duration("30d"), help="keep history this long (30d)"
    )
    parser.add_argument(
        "--retention-every", type=duration, default=3600.0, help="how often to prune (1h)"
    )
    actions = parser.add_subparsers(dest="action", metavar="QUERY")
    report = actions.add_parser("report", help="per device and service: errors, time in error")
    _db(report, query=True)
    report.add_argument("--since", type=duration, default=duration("24h"))
    report.add_argument("--device", help="only this device")
    history = actions.add_parser("history", help="one service's transitions, oldest first")
    _db(history, query=True)
    history.add_argument("device")
    history.add_argument("service")
    history.add_argument("--since", type=duration)
    history.add_argument("--limit", type=int, default=200)
    failing = actions.add_parser("failing", help="services in error now or since --since")
    _db(failing, query=True)
    failing.add_argument("--since", type=duration, default=duration("1h"))


def main(args: argparse.Namespace) -> int:
    try:
        from fleet_agent.operator.recorder import store  # noqa: PLC0415 (the recorder extra)
    except ImportError as exc:
        print(f"{PROG}: {exc}; install 'fleet-agent[recorder]'", file=sys.stderr)
        return 2
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    try:
        engine = store.open_engine(args.db)
    except (store.DatabaseError, SQLAlchemyError) as exc:
        print(f"{PROG}: cannot open {args.db}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if args.action is None:
        return _record(args, engine)
    from fleet_agent.operator.recorder import report_view  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    since = now - dt.timedelta(seconds=args.since) if args.since is not None else None
    show: Any = getattr(report_view, args.action)
    code: int = show(engine, args, since, now)
    return code


def _record(args: argparse.Namespace, engine: Any) -> int:
    from fleet_agent import logs  # noqa: PLC0415
    from fleet_agent.operator.errors import BrokerUnreachable  # noqa: PLC0415
    from fleet_agent.operator.recorder.service import Options, Recorder  # noqa: PLC0415

    try:
        conn = connection.load(args.config, args.url)
    except connection.SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logs.configure(os.environ.get("FLEET_AGENT_LOG_FORMAT", "json"))
    options = Options(retention_days=args.retention / 86400, retention_every=args.retention_every)
    recorder = Recorder(engine, conn, options)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        recorder.start(timeout=args.timeout)
    except BrokerUnreachable as exc:
        recorder.stop()
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG}: recording {conn.topic_prefix}/+/# into {args.db}", file=sys.stderr)
    stop.wait()
    recorder.stop()
    return 0
