"""`fleet-agent status [DEVICE ...|--all] [-o json]`: the fleet at a glance, like
`kubectl get pods`. Exit code 1 when anything is in error (or a device is not online)."""

from __future__ import annotations

import argparse
import json
import time

from rich.table import Table

from fleet_agent.operator import render
from fleet_agent.operator.common import (
    BAD_INPUT,
    FOUND_ERROR,
    OK,
    Exit,
    add_connection_arguments,
    console,
    open_client,
    run_command,
)
from fleet_agent.operator.fleet import Device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_device_arguments(parser)
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    add_connection_arguments(parser)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("devices", nargs="*", metavar="DEVICE", help="device ids (default: all)")
    parser.add_argument("--all", action="store_true", help="every device (the default)")


def chosen(args: argparse.Namespace) -> list[str] | None:
    if args.all and args.devices:
        raise Exit(BAD_INPUT, "give device ids or --all, not both")
    return list(args.devices) or None


def selected(devices: dict[str, Device], wanted: list[str] | None) -> list[Device]:
    """The wanted devices in order; one never seen is shown as unknown, not silently left out."""
    if wanted is None:
        return [devices[name] for name in sorted(devices)]
    return [devices.get(name) or Device(name) for name in wanted]


def table(devices: list[Device], now: float) -> Table:
    rows = [(device, row) for device in devices for row in render.device_rows(device, now)]
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for index, column in enumerate(render.COLUMNS):
        if column == "IMAGE":  # the one column that gives way (cut short) on a narrow terminal
            grid.add_column(column, no_wrap=True, overflow="ellipsis", min_width=12)
        else:
            width = max([len(column), *(len(row[index]) for _, row in rows)])
            grid.add_column(column, no_wrap=True, min_width=width)
    for device, row in rows:
        grid.add_row(*row, style=_style(device, row))
    return grid


def _style(device: Device, row: tuple[str, ...]) -> str | None:
    if not device.online:
        return "dim"
    if row[4] != render.NONE:
        return "red"
    return "green" if row[3] == "running" else None


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        wanted = chosen(args)
        with open_client(args, wanted) as client:
            devices = selected(client.devices(), wanted)
        now = time.time()
        out = console()
        if args.output == "json":
            doc = {"devices": [render.device_document(d, now) for d in devices]}
            print(json.dumps(doc, indent=2))
        elif not devices:
            out.print("no devices found", markup=False)
        else:
            out.print(table(devices, now))
        return FOUND_ERROR if any(render.in_trouble(d) for d in devices) else OK

    return run_command("status", body)
