"""`fleet-agent retry DEVICE [SERVICE]`: reset a service's backoff (or every failing service's)
and retry now; waits for the device's `cmd/result` by `requestId`. Exit code 1 when the device
refuses (an unknown service) or does not answer in time."""

from __future__ import annotations

import argparse

from fleet_agent.operator.common import (
    FOUND_ERROR,
    OK,
    add_connection_arguments,
    console,
    open_client,
    run_command,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", metavar="DEVICE")
    parser.add_argument(
        "service", metavar="SERVICE", nargs="?", help="default: every service in error"
    )
    parser.add_argument(
        "--wait-result",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for the device's answer (default 15)",
    )
    add_connection_arguments(parser)


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        with open_client(args, [args.device]) as client:
            result = client.retry(args.device, args.service, timeout=args.wait_result)
        out = console()
        if not result.ok:
            out.print(f"{args.device}: retry refused: {result.error}", markup=False)
            return FOUND_ERROR
        names = ", ".join(result.services or []) or "nothing was in error"
        out.print(f"{args.device}: retrying {names}", markup=False)
        return OK

    return run_command("retry", body)
