"""Strict target decoding that reports every invalid field with its path, not just the first.

msgspec stops at the first error; a person fixing a target wants them all at once. So the raw
JSON is walked against the Struct annotations (objects, arrays, maps, unions of both), each leaf
is checked with `msgspec.convert`, and only a clean document is converted for real. Rules the
schema cannot say (names, unique services, image references, ports) are checked afterwards.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from typing import Any

import msgspec

from fleet_agent import hostkeys, reference
from fleet_agent.model import FieldError, Target
from fleet_agent.spec import parse_port

NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?")
_PORT = re.compile(
    r"(?:(?:(?P<ip>\[[0-9a-fA-F:]+\]|[0-9.]+):)?(?P<host>\d{1,5}(?:-\d{1,5})?)?:)?"
    r"(?P<container>\d{1,5}(?:-\d{1,5})?)(?:/(?P<proto>tcp|udp|sctp))?"
)
_MAX_PORT = 65535
RESERVED_LABEL_PREFIX = "io.fleet-agent."


def decode_target(payload: bytes) -> Target | list[FieldError]:
    """Decode a target, or return every error found (path and message)."""
    try:
        raw = msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        return [FieldError("$", f"invalid JSON: {exc}")]
    errors = [*_check(raw, Target, "$"), *semantic_errors(raw)]
    return errors or msgspec.convert(raw, Target, strict=True)


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "str", bool: "bool", int: "int", float: "float"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check(value: Any, annotation: Any, path: str) -> Iterator[FieldError]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        yield from _check_struct(value, annotation, path)
    elif origin is list:
        if not isinstance(value, list):
            yield FieldError(path, f"Expected `array`, got `{_type_name(value)}`")
            return
        for index, item in enumerate(value):
            yield from _check(item, typing.get_args(annotation)[0], f"{path}[{index}]")
    elif origin is dict:
        if not isinstance(value, dict):
            yield FieldError(path, f"Expected `object`, got `{_type_name(value)}`")
            return
        for key, item in value.items():
            yield from _check(item, typing.get_args(annotation)[1], f"{path}.{key}")
    elif origin in (typing.Union, types.UnionType) and _is_container_union(annotation):
        yield from _check_union(value, annotation, path)
    else:
        try:
            msgspec.convert(value, annotation, strict=True)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).partition(" - at `$")
            yield FieldError(path + where.rstrip("`"), message)


def _is_container_union(annotation: Any) -> bool:
    return any(typing.get_origin(arm) in (list, dict) for arm in typing.get_args(annotation))


def _check_union(value: Any, annotation: Any, path: str) -> Iterator[FieldError]:
    arms = typing.get_args(annotation)
    for arm in arms:
        kind = typing.get_origin(arm) or arm
        if isinstance(value, kind):
            yield from _check(value, arm, path)
            return
    names = {list: "array", dict: "object", type(None): "null"}
    expected = " | ".join(names.get(typing.get_origin(arm) or arm, str(arm)) for arm in arms)
    yield FieldError(path, f"Expected `{expected}`, got `{_type_name(value)}`")


def _check_struct(value: Any, struct: type[msgspec.Struct], path: str) -> Iterator[FieldError]:
    if not isinstance(value, dict):
        yield FieldError(path, f"Expected `object`, got `{_type_name(value)}`")
        return
    hints = typing.get_type_hints(struct, include_extras=True)
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    for key in value:
        if key not in fields:
            yield FieldError(f"{path}.{key}", "unknown field")
    for name, info in fields.items():
        if name in value:
            yield from _check(value[name], hints[info.name], f"{path}.{name}")
        elif info.required:
            yield FieldError(f"{path}.{name}", "missing required field")


def _raw_apps(raw: Any) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(path, key, app) for every app object, whether `apps` is an object or a list."""
    apps = raw.get("apps") if isinstance(raw, dict) else None
    if isinstance(apps, dict):
        pairs: list[tuple[str, str | None, Any]] = [(f"$.apps.{k}", k, v) for k, v in apps.items()]
    elif isinstance(apps, list):
        pairs = [(f"$.apps[{i}]", None, v) for i, v in enumerate(apps)]
    else:
        pairs = []
    yield from ((path, key, app) for path, key, app in pairs if isinstance(app, dict))


def semantic_errors(raw: Any) -> Iterator[FieldError]:
    """Rules beyond the schema (names, uniqueness, references, ports, volumes, labels).

    Each rule looks at its raw field whenever that field has the right type (the schema check
    reports it otherwise), so one ack lists every error, schema and rules alike."""
    seen: dict[str, str] = {}
    for app_path, key, app in _raw_apps(raw):
        app_id = app.get("appId")
        if key is not None and isinstance(app_id, int) and key != str(app_id):
            yield FieldError(f"{app_path}.appId", f"appId {app_id} does not match key {key!r}")
        services = app.get("services")
        for index, service in enumerate(services if isinstance(services, list) else []):
            if not isinstance(service, dict):
                continue
            path = f"{app_path}.services[{index}]"
            name = service.get("serviceName")
            if isinstance(name, str) and name in seen:
                message = f"duplicate service name {name!r}, first at {seen[name]}"
                yield FieldError(f"{path}.serviceName", message)
            if isinstance(name, str):
                seen.setdefault(name, path)
            yield from _service_errors(service, path)


def _strings(value: Any) -> list[tuple[int, str]]:
    return (
        [(i, v) for i, v in enumerate(value) if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )


def _keys(value: Any) -> list[str]:
    return [k for k in value if isinstance(k, str)] if isinstance(value, dict) else []


def _service_errors(service: dict[str, Any], path: str) -> Iterator[FieldError]:
    name, image = service.get("serviceName"), service.get("imageName")
    if isinstance(name, str) and not NAME_PATTERN.fullmatch(name):
        yield FieldError(f"{path}.serviceName", f"must match {NAME_PATTERN.pattern}")
    if isinstance(image, str):
        try:
            reference.parse(image)
        except ValueError as exc:
            yield FieldError(f"{path}.imageName", str(exc))
    raw_config = service.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    if isinstance(config.get("image"), str) and isinstance(image, str) and config["image"] != image:
        yield FieldError(f"{path}.config.image", "must equal imageName when given")
    yield from _config_errors(config, f"{path}.config")


def _config_errors(config: dict[str, Any], path: str) -> Iterator[FieldError]:
    for index, port in _strings(config.get("ports")):
        if not _valid_port(port):
            yield FieldError(f"{path}.ports[{index}]", f"invalid port mapping {port!r}")
    for index, volume in _strings(config.get("volumes")):
        parts = volume.split(":")
        if not 2 <= len(parts) <= 3 or not all(parts[:2]) or not parts[1].startswith("/"):
            yield FieldError(f"{path}.volumes[{index}]", f"invalid volume {volume!r}")
    for key in _keys(config.get("environment")):
        if not key or "=" in key:
            yield FieldError(f"{path}.environment.{key}", "invalid variable name")
    for key in _keys(config.get("labels")):
        if key.startswith(RESERVED_LABEL_PREFIX):
            message = f"{RESERVED_LABEL_PREFIX}* labels are reserved"
            yield FieldError(f"{path}.labels.{key}", message)
    yield from hostkeys.config_errors(config, path)


def _valid_port(mapping: str) -> bool:
    """The grammar, and what the container spec can express: real ports, equal-length ranges."""
    if not _PORT.fullmatch(mapping):
        return False
    try:
        bindings = parse_port(mapping)
    except ValueError:
        return False
    ports = [b.container_port for b in bindings] + [b.host_port or 1 for b in bindings]
    return bool(bindings) and all(1 <= port <= _MAX_PORT for port in ports)
