"""`fleet-agent describe DEVICE SERVICE`: everything known about one service, as a readable
story like `kubectl describe pod`: status, the error with every field, the alert, container and
image, restarts, exit code and last output, and the history as a timeline with repeats folded.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from fleet_agent.operator import render
from fleet_agent.operator.common import (
    BAD_INPUT,
    OK,
    Exit,
    add_connection_arguments,
    console,
    open_client,
    run_command,
)
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.wire import AGENT, Alert, ServiceStatus

LABEL_WIDTH = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", metavar="DEVICE")
    parser.add_argument("service", metavar="SERVICE", help=f"a service name, or {AGENT}")
    add_connection_arguments(parser)


def _field(out: Console, label: str, value: object, indent: int = 0) -> None:
    text = render.NONE if value is None or value == "" else str(value)
    pad = " " * indent
    out.print(f"{pad}{label + ':':<{LABEL_WIDTH - indent}} {text}", markup=False, highlight=False)


def _when(stamp: str | None, now: float) -> str | None:
    return f"{stamp} ({render.relative(stamp, now)})" if stamp else None


def _header(out: Console, device: Device, status: ServiceStatus, now: float) -> None:
    _field(out, "Device", f"{device.device_id} ({render.availability(device, now)})")
    _field(out, "Service", status.service_name)
    _field(out, "App", f"{status.app_name} ({status.app_id}), service id {status.service_id}")
    _field(out, "Image", status.image_name)
    _field(out, "Status", render.state_text(status))
    _field(out, "Target version", status.target_version)
    _field(out, "Container", status.container_id)
    _field(out, "Running image", status.running_image)
    _field(out, "Restarts", status.restart_count)
    _field(out, "Exit code", status.exit_code)
    if status.progress is not None:
        done, total = status.progress.bytes_done, status.progress.bytes_total
        _field(out, "Progress", f"{status.progress.percent}% ({done} of {total or '?'} bytes)")
    _field(out, "Updated", _when(status.updated_at, now))


def _error(out: Console, status: ServiceStatus, now: float) -> None:
    error = status.error
    if error is None:
        _field(out, "Error", None)
        return
    out.print("Error:", style="bold red")
    message, _, output = error.message.partition("; last output: ")
    _field(out, "Type", error.type, 2)
    _field(out, "Message", message, 2)
    _field(out, "Since", _when(error.timestamp, now), 2)
    _field(out, "Retries", render.retries(status), 2)
    when = render.next_retry(status, now)
    _field(out, "Next retry", f"{when} ({error.next_retry})" if error.next_retry else when, 2)
    _field(out, "Exhausted", "yes" if error.exhausted else "no", 2)
    if output:
        out.print("  Last output:")
        for line in output.split(" | "):
            out.print(f"    {line}", markup=False)


def _alert(out: Console, alert: Alert | None, now: float) -> None:
    if alert is None:
        _field(out, "Alert", None)
        return
    out.print("Alert:", style="bold yellow" if alert.severity == "warning" else "bold red")
    _field(out, "Severity", alert.severity, 2)
    _field(out, "Type", alert.type, 2)
    _field(out, "Message", alert.message, 2)
    _field(out, "Raised", _when(alert.raised_at, now), 2)
    _field(out, "Updated", _when(alert.updated_at, now), 2)
    _field(out, "Retries", alert.retry_count, 2)


def _history(out: Console, device: Device, service: str, now: float) -> None:
    folds = render.fold(device.history.get(service, []))
    if not folds:
        _field(out, "History", None)
        return
    out.print("History:")
    grid = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for column in ("  AGE", "STATUS", "REASON", "RETRY", "MESSAGE"):
        grid.add_column(column, no_wrap=column != "MESSAGE")
    for item in folds:
        last = item.last
        age = render.relative(item.first.timestamp, now).removesuffix(" ago")
        retry = str(last.retry_count) if last.retry_count is not None else render.NONE
        message = " ".join(x for x in (item.label(), last.message or "") if x)
        status = "error" if item.failures else last.service_status
        reason = last.error_type or render.NONE
        grid.add_row(f"  {age}", status, reason, retry, message or render.NONE)
    out.print(grid)


def describe(out: Console, device: Device, service: str, now: float) -> None:
    if service == AGENT:
        _field(out, "Device", f"{device.device_id} ({render.availability(device, now)})")
        _alert(out, device.agent_alert, now)
        return
    status = device.services[service]
    _header(out, device, status, now)
    _error(out, status, now)
    _alert(out, device.alerts.get(service), now)
    _history(out, device, service, now)


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        with open_client(args, [args.device]) as client:
            device = client.device(args.device)
        if device is None:
            raise Exit(BAD_INPUT, f"device {args.device!r}: nothing retained on the broker")
        if args.service != AGENT and args.service not in device.services:
            known = ", ".join(sorted(device.services)) or "none"
            raise Exit(BAD_INPUT, f"{args.device} has no service {args.service!r} (known: {known})")
        describe(console(), device, args.service, time.time())
        return OK

    return run_command("describe", body)
