"""Rules for a service's `config` beyond its schema: what the engine would refuse at create or
start time is refused here, with its path, so it never turns into a StartFailure loop.

Each rule looks at its raw field only when that field has the right type (the schema check
reports it otherwise). New config keys get one function here and one line in `config_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fleet_agent import hostkeys
from fleet_agent.jsondoc import key_path
from fleet_agent.model import FieldError
from fleet_agent.validate_ports import port_errors
from fleet_agent.validate_volumes import volume_errors

RESERVED_LABEL_PREFIX = "io.fleet-agent."


def strings(value: Any) -> list[tuple[int, str]]:
    """(index, item) for each string item of a raw list (none when it is not a list)."""
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


def string_map(value: Any) -> list[tuple[str, Any]]:
    """(key, value) pairs of a raw object (none when it is not an object)."""
    return list(value.items()) if isinstance(value, dict) else []


def config_errors(config: dict[str, Any], path: str) -> Iterator[FieldError]:
    yield from port_errors(strings(config.get("ports")), f"{path}.ports")
    yield from volume_errors(strings(config.get("volumes")), f"{path}.volumes")
    for field in ("command", "entrypoint"):
        yield from _argument_errors(strings(config.get(field)), f"{path}.{field}")
    yield from _environment_errors(config.get("environment"), f"{path}.environment")
    yield from _label_errors(string_map(config.get("labels")), f"{path}.labels")
    yield from hostkeys.config_errors(config, path)  # devices, capAdd, user, memLimit


def _argument_errors(arguments: list[tuple[int, str]], path: str) -> Iterator[FieldError]:
    for index, argument in arguments:
        if "\x00" in argument:  # exec refuses it: the container would never start
            yield FieldError(f"{path}[{index}]", "NUL in an argument")


def _environment_errors(environment: Any, path: str) -> Iterator[FieldError]:
    if not isinstance(environment, dict):
        return
    names = "".join(environment)
    try:
        values = "".join(environment.values())
    except TypeError:  # a value that is not a string (the schema check reports it)
        values = "\x00"
    if "=" not in names and "\x00" not in names + values and "" not in environment:
        return  # the usual case, checked without a step per variable
    for name, value in environment.items():
        if not name:
            yield FieldError(key_path(path, name), "invalid variable name: empty")
        elif "=" in name:
            yield FieldError(key_path(path, name), "invalid variable name: it holds '='")
        elif "\x00" in name:
            yield FieldError(key_path(path, name), "invalid variable name: it holds NUL")
        elif isinstance(value, str) and "\x00" in value:
            yield FieldError(key_path(path, name), "NUL in a value")


def _label_errors(labels: list[tuple[str, Any]], path: str) -> Iterator[FieldError]:
    for name, _ in labels:
        if name.startswith(RESERVED_LABEL_PREFIX):
            message = f"{RESERVED_LABEL_PREFIX}* labels are reserved"
            yield FieldError(key_path(path, name), message)
