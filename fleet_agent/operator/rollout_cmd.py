"""`fleet-agent rollout start|status|pause|resume|abort|rollback`: guarded fleet rollouts.

`start FILE --name NAME` selects devices, plans phases and drives the rollout until it
succeeded, aborted or rolled back (exit 0, 1, 1). The control commands store a request on
`{p}/_rollouts/{name}/control`; a running controller applies it, and when none holds the lease
`resume` and `rollback` drive the rollout themselves (this is also how a killed controller is
restarted). Exit codes: 0 done/ok, 1 the rollout failed or a broker problem, 2 bad input.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import msgspec

from fleet_agent.operator import documents
from fleet_agent.operator import rollout_logic as logic
from fleet_agent.operator.common import (
    BAD_INPUT,
    FOUND_ERROR,
    OK,
    Exit,
    add_connection_arguments,
    console,
    open_client,
    print_errors,
    run_command,
)
from fleet_agent.operator.connection import load
from fleet_agent.operator.rollout_driver import FINAL, Controller, LeaseHeld
from fleet_agent.operator.rollout_model import RolloutError, Spec, State, check_spec
from fleet_agent.operator.rollout_store import Store
from fleet_agent.validate import NAME_PATTERN, decode_target

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration like 90, 30s, 5m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    start = verbs.add_parser("start", help="start a rollout and drive it")
    start.add_argument("file", type=Path, metavar="FILE", help="the release: target JSON/YAML")
    _strategy_arguments(start)
    _driving_arguments(start)
    add_connection_arguments(start)
    status = verbs.add_parser("status", help="counts per phase")
    status.add_argument("name", metavar="NAME")
    status.add_argument("--watch", action="store_true", help="print again on every change")
    add_connection_arguments(status)
    for verb in ("pause", "resume", "abort", "rollback"):
        sub = verbs.add_parser(verb, help=f"{verb} a rollout")
        sub.add_argument("name", metavar="NAME")
        _driving_arguments(sub, named=False)
        add_connection_arguments(sub)


def _strategy_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--name", required=True)
    add("--devices", type=_csv, default=[], help="device id globs, comma-separated")
    add("--label", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    add("--phases", type=_csv, default=["100%"], help="cumulative: 1,10%%,50%%,100%%")
    add("--exponential", type=_csv, default=[], metavar="START,FACTOR")
    add("--bake", type=duration, default=300.0)
    add("--max-in-flight", type=int, default=0)
    add("--progress-deadline", type=duration, default=600.0)
    add("--abort-on", type=_csv, default=None)
    add("--max-failures", default="0", help="devices, or a share like 10%% of a phase")
    add("--min-devices", type=int, default=1, help="finished devices before a share counts")
    add("--on-abort", choices=("pause", "rollback"), default="pause")
    add("--offline", choices=("skip", "wait"), default="skip", help="devices offline at start")


def _driving_arguments(parser: argparse.ArgumentParser, named: bool = True) -> None:
    parser.add_argument("--lease", type=duration, default=15.0, help="controller lease")
    parser.add_argument("--no-drive", action="store_true", help="only send the request")


def _spec(args: argparse.Namespace, target: dict[str, Any]) -> Spec:
    if not NAME_PATTERN.fullmatch(args.name):
        raise Exit(BAD_INPUT, f"--name {args.name!r}: lower-case letters, digits, - and _")
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Exit(BAD_INPUT, f"--label {item!r}: KEY=VALUE")
        labels[key] = value
    try:
        exponential = [float(x) for x in args.exponential]
    except ValueError:
        raise Exit(BAD_INPUT, "--exponential: START,FACTOR (numbers)") from None
    extra = {} if args.abort_on is None else {"abort_on": args.abort_on}
    body = {k: v for k, v in target.items() if k != "version"}
    return Spec(
        name=args.name, target=body, devices=args.devices, labels=labels, phases=args.phases,
        exponential=exponential, bake=args.bake, max_in_flight=args.max_in_flight,
        progress_deadline=args.progress_deadline, max_failures=args.max_failures,
        min_devices=args.min_devices, on_abort=args.on_abort, offline=args.offline, **extra,
    )  # fmt: skip


def _store(args: argparse.Namespace, name: str) -> Store:
    if not NAME_PATTERN.fullmatch(name):
        raise Exit(BAD_INPUT, f"{name!r} is not a rollout name")
    try:
        conn = load(args.config, args.url)
    except Exception as exc:  # SettingsError: open_client reports it the same way
        raise Exit(BAD_INPUT, str(exc)) from exc
    return Store(conn, name).connect(args.timeout)


def main(args: argparse.Namespace) -> int:
    return run_command("rollout", lambda: _VERBS[args.verb](args))


def _start(args: argparse.Namespace) -> int:
    out = console()
    try:
        target = documents.load(args.file)
    except documents.DocumentError as exc:
        out.print(f"{args.file}: invalid ({len(exc.errors)} error(s)):", markup=False)
        print_errors(out, exc.errors)
        return BAD_INPUT
    spec = _spec(args, target)
    checked = decode_target(msgspec.json.encode({**spec.target, "version": 1}))
    if isinstance(checked, list):
        out.print(f"{args.file}: invalid target ({len(checked)} error(s)):", markup=False)
        print_errors(out, checked)
        return BAD_INPUT
    try:
        check_spec(spec)
    except RolloutError as exc:
        raise Exit(BAD_INPUT, str(exc)) from exc
    with open_client(args) as client:
        store = _store(args, spec.name)
        try:
            existing = store.snapshot()[0]
            if existing is not None:
                raise Exit(
                    BAD_INPUT,
                    f"rollout {spec.name} exists ({existing.status}); "
                    f"use `rollout resume {spec.name}` or another name",
                )
            try:
                state = logic.start(spec, client.devices(), time.time())
            except RolloutError as exc:
                raise Exit(BAD_INPUT, str(exc)) from exc
            return _drive(args, Controller(client, store, lease=args.lease), state, wait=0)
        finally:
            store.close()


def _drive(args: argparse.Namespace, controller: Controller, state: State, wait: float) -> int:
    out = console()
    shown: list[str] = []

    def show(current: State) -> None:
        line = _headline(current)
        if not shown or shown[-1] != line:
            shown.append(line)
            out.print(line, markup=False)

    controller.on_tick = show
    try:
        state = controller.acquire(state, wait)
        state = controller.run(state)
    except LeaseHeld as exc:
        raise Exit(FOUND_ERROR, str(exc)) from exc
    _print_status(out, state)
    return OK if state.status == "succeeded" else FOUND_ERROR


def _control(args: argparse.Namespace) -> int:
    out = console()
    with open_client(args) as client:
        store = _store(args, args.name)
        try:
            state = store.snapshot()[0]
            if state is None:
                raise Exit(BAD_INPUT, f"no rollout named {args.name}")
            request = store.send_control(args.verb)
            if args.no_drive:
                out.print(f"rollout {args.name}: {args.verb} requested", markup=False)
                return OK
            state = _wait_applied_or_free(store, state, request.id, args.lease * 2)
            if state.control == request.id:
                out.print(f"rollout {args.name}: {args.verb} applied", markup=False)
                return OK
            now = time.time()
            if state.status in FINAL and args.verb != "rollback":
                out.print(f"rollout {args.name} is {state.status}", markup=False)
                return OK
            controller = Controller(client, store, lease=args.lease)
            if args.verb in ("pause", "abort"):
                state = logic.control(state, args.verb, request.id, now)
                store.save(state)
                _print_status(out, state)
                return OK
            return _drive(args, controller, state, wait=args.lease * 2)
        finally:
            store.close()


def _wait_applied_or_free(store: Store, state: State, request_id: str, wait: float) -> State:
    """Wait until a live controller applied the request, or no controller holds the lease."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        state = store.snapshot()[0] or state
        lease = state.lease
        if state.control == request_id or lease is None or lease.expires_at <= time.time():
            return state
        time.sleep(0.2)
    return state


def _status(args: argparse.Namespace) -> int:
    out = console()
    store = _store(args, args.name)
    try:
        state = store.snapshot()[0]
        if state is None:
            out.print(store.state_problem or f"no rollout named {args.name}", markup=False)
            return BAD_INPUT
        _print_status(out, state)
        while args.watch and state.status not in FINAL:
            time.sleep(1.0)
            current = store.snapshot()[0]
            if current is not None and current.updated_at != state.updated_at:
                state = current
                _print_status(out, state)
        return OK
    finally:
        store.close()


def _headline(state: State) -> str:
    text = f"rollout {state.spec.name}: {state.status}, phase {state.phase + 1}/"
    text += f"{len(state.phase_ends)}"
    if state.lease is not None:
        text += f", driven by {state.lease.owner}"
    return text + (f" ({state.reason})" if state.reason else "")


def _print_status(out: Any, state: State) -> None:
    out.print(_headline(state), markup=False)
    for row in logic.summary(state):
        reasons = row.pop("reasons")
        phase, size = row.pop("phase"), row.pop("devices")
        stages = ", ".join(f"{stage} {n}" for stage, n in sorted(row.items()))
        why = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        line = f"  phase {phase} ({size} devices): {stages}"
        out.print(line + (f"; failed: {why}" if why else ""), markup=False)


_VERBS = {
    "start": _start, "status": _status, "pause": _control, "resume": _control,
    "abort": _control, "rollback": _control,
}  # fmt: skip
