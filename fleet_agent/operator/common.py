"""What every operator command shares: connection options, opening the client with plain
one-line errors, the console (colours only on a terminal), and the exit codes of the contract.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from fleet_agent.model import FieldError
from fleet_agent.operator import connection
from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.errors import FleetClientError

OK, FOUND_ERROR, BAD_INPUT = 0, 1, 2  # the contract's exit codes of operator commands
PLAIN_WIDTH = 400


class Exit(Exception):
    """Ends a command with a code and a one-line message (no traceback)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (default: the agent's FLEET_AGENT_MQTT_*)")
    group.add_argument("--config", type=Path, help="TOML settings file, as for `fleet-agent run`")
    group.add_argument("--url", help="broker URL, mqtt://host:port or mqtts://host:port")
    group.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the broker (default 10)"
    )


def console(stderr: bool = False) -> Console:
    """Colours and live views on a terminal; plain text (no escapes) when piped or in CI."""
    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:  # whole lines for grep and scripts, never cut at 80 columns
        out = Console(stderr=stderr, highlight=False, width=PLAIN_WIDTH, soft_wrap=True)
    return out


def open_client(
    args: argparse.Namespace, devices: Iterable[str] | None = None, events: bool = False
) -> FleetClient:
    try:
        conn = connection.load(args.config, args.url)
    except connection.SettingsError as exc:
        raise Exit(BAD_INPUT, str(exc)) from exc
    client = FleetClient(conn, devices, events=events)
    try:
        return client.connect(timeout=args.timeout)
    except FleetClientError as exc:
        raise Exit(FOUND_ERROR, str(exc)) from exc


def print_errors(out: Console, errors: Iterable[FieldError]) -> None:
    for error in errors:
        out.print(f"  {error.path}: {error.message}", markup=False)


def fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    raise Exit(code, message)


def run_command(name: str, body: Callable[[], int]) -> int:
    """Run a command body (a callable returning the exit code), turning `Exit` and client
    errors into a message on stderr and the right code."""
    try:
        code = body()
    except Exit as exc:
        if exc.message:
            print(f"fleet-agent {name}: {exc.message}", file=sys.stderr)
        return exc.code
    except FleetClientError as exc:
        print(f"fleet-agent {name}: {exc}", file=sys.stderr)
        return FOUND_ERROR
    except KeyboardInterrupt:
        return 130
    return code
