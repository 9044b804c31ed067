"""`fleet-agent watch [DEVICE ...|--all]`: the status table, updated live as messages arrive,
countdowns ticking. When the table would not fit the terminal (a fleet of 1,000 devices), it
shows one summary line per device instead, the devices in trouble first, and says how many
more there are. When the output is not a terminal it prints one line per change instead.
Ends with Ctrl-C (exit code 0).
"""

from __future__ import annotations

import argparse
import contextlib
import time

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from fleet_agent.operator import render
from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.common import (
    OK,
    add_connection_arguments,
    console,
    open_client,
    run_command,
)
from fleet_agent.operator.fleet import Change, Device
from fleet_agent.operator.status_cmd import add_device_arguments, chosen, selected, table

TICK = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_device_arguments(parser)
    parser.add_argument(
        "--for",
        dest="duration",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    add_connection_arguments(parser)


def screen(devices: list[Device], now: float, height: int) -> Group:
    """The full table when it fits in `height` lines, else one line per device."""
    rows = sum(len(render.device_rows(d, now)) for d in devices)
    trouble = sum(render.in_trouble(d) for d in devices)
    clock = time.strftime("%H:%M:%S")
    head = Text(
        f"{len(devices)} devices, {trouble} in trouble · {clock} · Ctrl-C ends", style="dim"
    )
    if rows + 3 <= height:
        return Group(head, table(devices, now))
    ordered = sorted(devices, key=lambda d: (not render.in_trouble(d), d.device_id))
    room = max(1, height - 3)
    lines = [Text(render.summary_line(d, now), style=_style(d)) for d in ordered[:room]]
    if len(ordered) > room:
        lines.append(Text(f"... and {len(ordered) - room} more devices", style="dim"))
    return Group(head, *lines)


def _style(device: Device) -> str:
    if not device.online:
        return "dim"
    return "red" if device.in_error else "green"


def change_line(change: Change, now: float) -> str | None:
    """One plain line for a change worth reading (not a terminal)."""
    device = change.device
    if device is None or not change.live:
        return None
    if change.kind == "services" and change.service:
        status = device.services.get(change.service)
        if status is None:
            return f"{change.device_id} {change.service}: removed"
        row = render.service_row(device, status, now)
        return " ".join(x for x in (change.device_id, *row[2:7]) if x != render.NONE)
    if change.kind == "availability":
        return f"{change.device_id}: {render.availability(device, now)}"
    if change.kind == "alerts" and change.service:
        alert = device.alerts.get(change.service)
        what = f"{alert.severity} {alert.type}: {alert.message}" if alert else "cleared"
        return f"{change.device_id} {change.service}: alert {what}"
    return None


def _live(out: Console, client: FleetClient, wanted: list[str] | None, until: float) -> None:
    with client.changes() as stream, Live(console=out, auto_refresh=False, screen=False) as live:
        while time.monotonic() < until:
            devices = selected(client.devices(), wanted)
            live.update(screen(devices, time.time(), out.size.height - 1), refresh=True)
            stream.get(timeout=TICK)


def _lines(out: Console, client: FleetClient, wanted: list[str] | None, until: float) -> None:
    now = time.time()
    for device in selected(client.devices(), wanted):
        for row in render.device_rows(device, now):
            out.print(" ".join(row), markup=False, highlight=False)
    with client.changes() as stream:
        while time.monotonic() < until:
            change = stream.get(timeout=TICK)
            line = change_line(change, time.time()) if change else None
            if line and change is not None and (wanted is None or change.device_id in wanted):
                out.print(line, markup=False, highlight=False)


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        wanted = chosen(args)
        until = time.monotonic() + (args.duration if args.duration is not None else float("inf"))
        out = console()
        with open_client(args, wanted) as client, contextlib.suppress(KeyboardInterrupt):
            (_live if out.is_terminal else _lines)(out, client, wanted, until)
        return OK

    return run_command("watch", body)
