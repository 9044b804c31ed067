"""Commands from the cloud (`cmd/retry`, `cmd/reconcile`): decoding and results (pure).

The transport hands a command's name and raw payload here together with the two actions the
agent offers; the result always says which command it answers and echoes `requestId`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec

COMMANDS = ("retry", "reconcile")


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
    try:
        command = msgspec.json.decode(payload or b"{}", type=Command)
    except msgspec.MsgspecError as exc:
        return CommandResult(name, False, _request_id(payload), error=f"invalid command: {exc}")
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


def _request_id(payload: bytes) -> str | None:
    """Echo a request id even from a command that failed to decode, when it can be found."""
    try:
        value = msgspec.json.decode(payload).get("requestId")
    except (msgspec.DecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None
