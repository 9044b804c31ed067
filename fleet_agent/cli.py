"""The `fleet-agent` command line: `fleet-agent run [--config agent.toml] [--target-file F]`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import structlog

from fleet_agent import __version__, config, logs
from fleet_agent.agent import Agent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="reconcile this device toward its target until stopped")
    run.add_argument("--config", type=Path, help="TOML settings file (environment variables win)")
    run.add_argument(
        "--target-file", type=Path, help="local mode: take the target from this file (watched)"
    )
    return parser


def run(config_path: Path | None, target_file: Path | None) -> int:
    try:
        settings = config.load(config_path)
    except config.ConfigError as exc:
        print(f"fleet-agent: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.resolved_log_format)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent = Agent(settings, target_file=target_file)
    agent.start()
    stop.wait()
    structlog.get_logger(__name__).info("stopping")
    agent.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run(args.config, args.target_file)


if __name__ == "__main__":
    sys.exit(main())
