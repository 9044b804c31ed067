"""The recorder's query commands as tables on the console (plain text when piped): `report`,
`history` and `failing`, each `(engine, args, since, now) -> exit code` (1: something failed).
"""

from __future__ import annotations

import argparse
import datetime as dt

from rich.table import Table
from sqlalchemy.engine import Engine

from fleet_agent.operator.common import FOUND_ERROR, OK, console
from fleet_agent.operator.recorder import queries
from fleet_agent.operator.render import duration


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def report(engine: Engine, args: argparse.Namespace, since: dt.datetime, now: dt.datetime) -> int:
    rows = queries.report(engine, since, now, args.device)
    table = Table("DEVICE", "SERVICE", "ERRORS", "IN ERROR", "RESTARTS", "WORST ALERT")
    for r in rows:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())) or "-"
        table.add_row(
            r.device_id,
            r.service,
            errors,
            duration(r.seconds_in_error),
            str(r.restarts),
            r.worst_alert or "-",
        )
    out = console()
    out.print(f"since {_when(since)} UTC ({len(rows)} services)")
    out.print(table)
    return FOUND_ERROR if any(r.errors or r.seconds_in_error for r in rows) else OK


def history(engine: Engine, args: argparse.Namespace, since: dt.datetime | None, _: object) -> int:
    rows = queries.history(engine, args.device, args.service, since, args.limit)
    table = Table("AT (UTC)", "STATUS", "ERROR", "RETRY", "RESTARTS", "MESSAGE")
    for r in rows:
        retry = "-" if r["retry_count"] is None else str(r["retry_count"])
        restarts = "-" if r["restart_count"] is None else str(r["restart_count"])
        table.add_row(
            _when(r["at"]), r["status"], r["error_type"] or "-", retry, restarts, r["message"] or ""
        )
    out = console()
    out.print(f"{args.device}/{args.service}: {len(rows)} transitions")
    out.print(table)
    return OK


def failing(engine: Engine, _args: argparse.Namespace, since: dt.datetime, _: object) -> int:
    rows = queries.failing(engine, since)
    table = Table("DEVICE", "SERVICE", "NOW", "ERRORS", "LAST ERROR", "AT (UTC)")
    for r in rows:
        now = f"{r.status} {r.error_type}" if r.error_type else (r.status or "gone")
        table.add_row(
            r.device_id, r.service, now, str(r.errors), r.last_error or "-", _when(r.last_error_at)
        )
    out = console()
    out.print(f"failing since {_when(since)} UTC: {len(rows)} services")
    out.print(table)
    return FOUND_ERROR if rows else OK
