"""`fleet-agent dashboard [--listen 127.0.0.1:8080] [--token T | --token-file F]`.

Connects one `FleetClient` (the agent's connection settings: a monitor account; the browser
never sees them), feeds its changes into the stream hub and serves the app with uvicorn until
SIGINT or SIGTERM. Starlette and uvicorn come with the `dashboard` extra and are imported only
here, after the arguments were checked.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_agent.operator import connection
from fleet_agent.operator.dashboard.guard import Guard, GuardError, parse_listen, read_token

if TYPE_CHECKING:
    from fleet_agent.operator.dashboard.app import PastAlerts, Recorded

PROG = "fleet-agent dashboard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="HOST:PORT to serve on (default 127.0.0.1:8080; not loopback needs a token)",
    )
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", help="the token browsers must log in with")
    tokens.add_argument("--token-file", type=Path, help="read the token from this file")
    parser.add_argument("--config", type=Path, help="TOML settings file (the agent's keys)")
    parser.add_argument("--url", help="broker URL (wins over FLEET_AGENT_MQTT_URL)")
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, help="seconds to reach the broker"
    )
    parser.add_argument(
        "--db",
        help="the recorder's database URL (sqlite:///PATH or postgresql://...): the drawer "
        "shows its longer history and past alerts, the alerts panel the fleet's past alerts "
        "(needs the recorder extra)",
    )


def _settings(args: argparse.Namespace) -> tuple[str, int, Guard, connection.Connection]:
    host, port = parse_listen(args.listen)
    token = read_token(args.token_file) if args.token_file else args.token
    guard = Guard.for_listen(host, token)
    return host, port, guard, connection.load(args.config, args.url)


def _recorded(url: str) -> tuple[Recorded, PastAlerts] | str:
    """The drawer's and the alerts panel's readers over the recorder's database, or why it
    cannot be opened."""
    try:
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 (the recorder extra)

        from fleet_agent.operator.recorder import queries, store  # noqa: PLC0415
    except ImportError as exc:
        return f"{exc}; install 'fleet-agent[recorder]' for --db"
    try:
        engine = store.open_engine(url)
    except (store.DatabaseError, SQLAlchemyError) as exc:
        return f"cannot open {url}: {str(exc).splitlines()[0]}"
    return functools.partial(queries.drawer, engine), functools.partial(
        queries.past_alerts_page, engine
    )


def main(args: argparse.Namespace) -> int:
    try:
        host, port, guard, conn = _settings(args)
    except (GuardError, connection.SettingsError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        import uvicorn  # noqa: PLC0415 (the dashboard extra)

        from fleet_agent.operator.dashboard.app import create_app  # noqa: PLC0415
    except ImportError as exc:
        print(f"{PROG}: {exc}; install 'fleet-agent[dashboard]'", file=sys.stderr)
        return 2
    readers = _recorded(args.db) if args.db else (None, None)
    if isinstance(readers, str):
        print(f"{PROG}: {readers}", file=sys.stderr)
        return 2
    from fleet_agent.operator.client import FleetClient  # noqa: PLC0415
    from fleet_agent.operator.dashboard.hub import Hub  # noqa: PLC0415
    from fleet_agent.operator.errors import BrokerUnreachable  # noqa: PLC0415

    hub = Hub()
    client = FleetClient(conn)
    client.on_change(lambda change: hub.notify(change.device_id))
    try:
        client.connect(timeout=args.connect_timeout)
    except BrokerUnreachable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    try:
        app = create_app(client, guard, hub, recorded=readers[0], past=readers[1])
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
        )
        shown = f"[{host}]" if ":" in host else host
        print(f"{PROG}: http://{shown}:{port}/ ({len(client.devices())} devices)", file=sys.stderr)
        uvicorn.Server(config).run()
    finally:
        client.close()
    return 0
