"""`fleet-agent apply DEVICE FILE [--wait]`: publish a target from JSON, YAML or a
docker-compose file, wait for the device's ack and print it; with `--wait`, follow the device
live (pull progress bars, each service's state) until every service runs or one fails.

Exit codes: 0 accepted (and, with `--wait`, converged); 1 no ack in time or `--wait` ended in
a failure or a timeout; 2 an invalid file or a target the device rejected.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fleet_agent.operator import converge, documents, render
from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.common import (
    BAD_INPUT,
    FOUND_ERROR,
    OK,
    add_connection_arguments,
    console,
    open_client,
    print_errors,
    run_command,
)
from fleet_agent.operator.errors import InvalidTarget
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.wire import Ack, ServiceStatus

REFRESH = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", metavar="DEVICE")
    parser.add_argument("file", metavar="FILE", type=Path, help="target JSON/YAML or compose file")
    parser.add_argument(
        "--target-version",
        type=int,
        metavar="N",
        help="publish as version N (default: the file's, else the last accepted + 1)",
    )
    parser.add_argument("--wait", action="store_true", help="follow the device until it converges")
    parser.add_argument("--wait-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument("--ack-timeout", type=float, default=30.0, metavar="SECONDS")
    add_connection_arguments(parser)


def service_names(doc: dict[str, Any]) -> list[str]:
    apps = doc.get("apps")
    app_list = list(apps.values()) if isinstance(apps, dict) else apps or []
    return [s["serviceName"] for app in app_list for s in app.get("services", [])]


def print_ack(out: Console, device_id: str, ack: Ack) -> int:
    which = "target" if ack.version is None else f"target version {ack.version}"
    if ack.accepted:
        out.print(f"{device_id}: {which} accepted ({ack.code})", style="green", markup=False)
        return OK
    out.print(f"{device_id}: {which} rejected ({ack.code}):", style="bold red", markup=False)
    print_errors(out, ack.errors)
    return BAD_INPUT


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        out = console()
        try:
            doc = documents.load(args.file)
        except documents.DocumentError as exc:
            out.print(f"{args.file}: invalid ({len(exc.errors)} error(s)):", markup=False)
            print_errors(out, exc.errors)
            return BAD_INPUT
        version: Any = "auto" if args.target_version is None else args.target_version
        with open_client(args, [args.device]) as client:
            try:
                ack = client.apply(args.device, doc, version=version, timeout=args.ack_timeout)
            except InvalidTarget as exc:
                out.print(
                    f"{args.file}: invalid target ({len(exc.errors)} error(s)):", markup=False
                )
                print_errors(out, exc.errors)
                return BAD_INPUT
            code = print_ack(out, args.device, ack)
            if code != OK or not args.wait:
                return code
            names = service_names(doc)
            return follow(out, client, args.device, names, ack.version, args.wait_timeout)

    return run_command("apply", body)


def follow(
    out: Console,
    client: FleetClient,
    device_id: str,
    names: list[str],
    version: int | None,
    timeout: float,
) -> int:
    """Show the device converging; print the verdict; its exit code."""
    deadline = time.monotonic() + timeout
    view = LiveView(out) if out.is_terminal else LineView(out)
    with client.changes() as stream, view:
        while True:
            device = client.device(device_id)
            view.update(device, names, version)
            outcome = converge.verdict(device, names, version)
            if outcome is not None:
                break
            if time.monotonic() > deadline:
                outcome = converge.Verdict("failed", f"not converged within {timeout:g}s")
                break
            stream.get(timeout=REFRESH)
    ok = outcome.outcome == "ok"
    style = "bold green" if ok else "bold red"
    out.print(
        f"{device_id}: {'converged' if ok else 'failed'}: {outcome.message}",
        style=style,
        markup=False,
    )
    return OK if ok else FOUND_ERROR


def _bytes(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.0f} kB"


def _line(status: ServiceStatus | None, name: str, now: float) -> str:
    if status is None:
        return f"{name}: waiting for its status"
    text = f"{name}: {render.state_text(status)}"
    if status.progress is not None and status.service_status == "downloading":
        progress = status.progress
        text += f" ({_bytes(progress.bytes_done)} of {_bytes(progress.bytes_total)})"
    if status.error is not None:
        text += f" {status.error.type} {render.retries(status)}, next retry "
        text += f"{render.next_retry(status, now)}: {status.error.message}"
    return text


class LineView:
    """Not a terminal: one plain line whenever a service's line changes."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.seen: dict[str, str] = {}

    def update(self, device: Device | None, names: list[str], version: int | None) -> None:
        statuses = {s.service_name: s for s in converge.current(device, names, version)}
        for name in names:
            line = _line(statuses.get(name), name, 0.0).split(", next retry")[0]
            if self.seen.get(name) != line:
                self.seen[name] = line
                self.out.print(line, markup=False, highlight=False)

    def __enter__(self) -> LineView:
        return self

    def __exit__(self, *_: object) -> None:
        return None


class LiveView:
    """A terminal: a live table with a progress bar per pulling service and countdowns."""

    def __init__(self, out: Console) -> None:
        self.live = Live(console=out, refresh_per_second=8, transient=False)

    def update(self, device: Device | None, names: list[str], version: int | None) -> None:
        statuses = {s.service_name: s for s in converge.current(device, names, version)}
        now = time.time()
        grid = Table(box=None, pad_edge=False, show_header=False, padding=(0, 2, 0, 0))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column()
        for name in names:
            grid.add_row(*_cells(statuses.get(name), name, now))
        self.live.update(Group(grid))

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.live.stop()


def _cells(status: ServiceStatus | None, name: str, now: float) -> tuple[Any, Any, Any]:
    if status is None:
        return Text(name, style="bold"), Text("pending", style="dim"), ""
    state = Text(render.state_text(status), style=_colour(status))
    progress = status.progress
    if status.service_status == "downloading" and progress is not None:
        bar = ProgressBar(total=100, completed=progress.percent, width=30)
        done = f" {_bytes(progress.bytes_done)} / {_bytes(progress.bytes_total)}"
        return Text(name, style="bold"), state, Group(bar, Text(done, style="dim"))
    detail = ""
    if status.error is not None:
        detail = f"{status.error.type} {render.retries(status)}, next retry "
        detail += f"{render.next_retry(status, now)}: {status.error.message}"
    return Text(name, style="bold"), state, Text(detail, style="red")


def _colour(status: ServiceStatus) -> str:
    if status.error is not None:
        return "bold red"
    return "green" if status.service_status == "running" else "yellow"
