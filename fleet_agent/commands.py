"""Commands from the cloud (`cmd/retry`, `cmd/reconcile`): decoding and results (pure).

The transport hands a command's name and raw payload here together with the two actions the
agent offers; the result always says which command it answers and echoes `requestId`. A
payload is read within bounds (size, depth, repeated keys) like a target, so every command,
however malformed, gets a result and nothing else happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from fleet_agent.jsondoc import Malformed, load

COMMANDS = ("retry", "reconcile")
MAX_COMMAND_BYTES = 64 * 1024


class Command(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    service: str | None = None
    request_id: str | None = None


class CommandResult(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    command: str
    ok: bool
    request_id: str | None = None
    services: list[str] | None = None
    error: str | None = None


def execute(
    name: str,
    payload: bytes,
    retry: Callable[[Iterable[str]], list[str]],
    reconcile: Callable[[], None],
    known: Callable[[], set[str]],
) -> CommandResult:
    decoded = decode(payload)
    if isinstance(decoded, CommandResult):
        return msgspec.structs.replace(decoded, command=name)
    command = decoded
    if name not in COMMANDS:
        return CommandResult(name, False, command.request_id, error=f"unknown command {name!r}")
    if name == "reconcile":
        reconcile()
        return CommandResult(name, True, command.request_id)
    if command.service is not None and command.service not in known():
        error = f"unknown service {command.service!r}"
        return CommandResult(name, False, command.request_id, error=error)
    services = retry([command.service] if command.service else [])
    return CommandResult(name, True, command.request_id, services=services)


def decode(payload: bytes) -> Command | CommandResult:
    """The command, or a failed result (its `command` left for the caller) saying why not."""
    if len(payload) > MAX_COMMAND_BYTES:
        return _invalid(f"payload of {len(payload)} bytes exceeds {MAX_COMMAND_BYTES}", None)
    try:
        raw, repeated = load(payload or b"{}")
    except Malformed as exc:
        return _invalid(f"{exc.error.path}: {exc.error.message}", None)
    if repeated:
        return _invalid(f"{repeated[0].path}: {repeated[0].message}", _request_id(raw))
    try:
        return msgspec.convert(raw, Command, strict=True)
    except msgspec.ValidationError as exc:
        return _invalid(str(exc), _request_id(raw))


def _invalid(reason: str, request_id: str | None) -> CommandResult:
    return CommandResult("", False, request_id, error=f"invalid command: {reason}")


def _request_id(raw: Any) -> str | None:
    """Echo a request id even from a command that failed to decode, when it can be found."""
    value = raw.get("requestId") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None
