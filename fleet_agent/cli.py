"""The `fleet-agent` command line: `run` (the device agent) and the operator commands.

The agent's own `run` is defined here. Operator commands live in `fleet_agent/operator/`, one
module each, listed in `OPERATOR_COMMANDS`; a module is imported only when its command runs, so
the device agent never loads the operator side (rich, PyYAML). To add a command, write a module
with `add_arguments(parser)` and `main(args) -> int` and add one line to the table.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType

from fleet_agent import __version__, lean

# name -> (module, one-line help)
OPERATOR_COMMANDS: dict[str, tuple[str, str]] = {
    "status": (
        "fleet_agent.operator.status_cmd",
        "devices and services at a glance (kubectl get pods)",
    ),
    "describe": ("fleet_agent.operator.describe_cmd", "everything known about one service"),
    "watch": ("fleet_agent.operator.watch_cmd", "the status table, updated live"),
    "apply": ("fleet_agent.operator.apply_cmd", "publish a target (JSON, YAML, docker-compose)"),
    "retry": ("fleet_agent.operator.retry_cmd", "reset a service's backoff and retry it now"),
    "validate": ("fleet_agent.operator.validate_cmd", "check a target offline, policy included"),
    "keygen": ("fleet_agent.operator.keygen_cmd", "make an Ed25519 key pair for signing targets"),
    "sign": ("fleet_agent.operator.sign_cmd", "sign a target file for one device (JWS, EdDSA)"),
    "dashboard": ("fleet_agent.operator.dashboard_cmd", "the fleet live in a web browser"),
    "demo": ("fleet_agent.operator.demo_cmd", "the origin story, live: break, back off, fix, heal"),
    "recorder": ("fleet_agent.operator.recorder_cmd", "the fleet's history in SQLite/PostgreSQL"),
    "rollout": ("fleet_agent.operator.rollout_cmd", "guarded fleet rollouts: phases, bake, abort"),
}


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="TOML settings file (environment variables win)"
    )
    parser.add_argument(
        "--target-file", type=Path, help="local mode: take the target from this file (watched)"
    )


def _parser(chosen: str | None) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """The parser; only the chosen operator command's module is imported (for its arguments)."""
    parser = argparse.ArgumentParser(prog="fleet-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="reconcile this device toward its target until stopped")
    _run_arguments(run)
    module = None
    for name, (path, help_text) in OPERATOR_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(path)
            module.add_arguments(sub)
    return parser, module


def run(config_path: Path | None, target_file: Path | None) -> int:
    lean.skip_charset_detection()  # before the agent's libraries load
    import structlog  # noqa: PLC0415 (the agent's imports, only for `run`)

    from fleet_agent import startup  # noqa: PLC0415

    agent = startup.prepare(config_path, target_file)
    if isinstance(agent, str):  # a configuration error: one line, exit code 2
        print(agent, file=sys.stderr)
        return startup.CONFIG_ERROR
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    agent.start()
    stop.wait()
    structlog.get_logger(__name__).info("stopping")
    agent.stop()
    return 0


def _chosen(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    chosen = _chosen(given)
    try:
        parser, module = _parser(chosen if chosen in OPERATOR_COMMANDS else None)
    except ImportError as exc:  # the operator extra is not installed
        print(f"fleet-agent {chosen}: {exc}; install fleet-agent[operator]", file=sys.stderr)
        return 2
    args = parser.parse_args(given)
    if args.command == "run":
        if argv is None:  # the process's own command line: it can be started again
            lean.limit_malloc_arenas()
        return run(args.config, args.target_file)
    assert module is not None
    code: int = module.main(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
