"""Strict target decoding that reports every invalid field with its path, not just the first.

msgspec stops at the first error; a person fixing a target wants them all at once. So the raw
JSON (read within bounds by `jsondoc`: depth, repeated keys) is converted in one go when it is
sound, and otherwise walked against the Struct annotations (objects, arrays, maps, unions of
both), each leaf checked with `msgspec.convert`. Rules the schema cannot say (names, unique
services and appIds, the services cap, image references) are checked afterwards, and a
service's config by `validate_config`. Every step is linear in the payload's size, and an ack
lists at most MAX_ERRORS errors.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

import msgspec

from fleet_agent import reference
from fleet_agent.jsondoc import MAX_CONTAINERS, MAX_DEPTH, Malformed, key_path, load
from fleet_agent.model import MAX_SAFE_INT, FieldError, Target
from fleet_agent.validate_config import RESERVED_LABEL_PREFIX, config_errors
from fleet_agent.validate_ports import MAX_BINDINGS

__all__ = [
    "DEFAULT_MAX_SERVICES",
    "MAX_BINDINGS",
    "MAX_DEPTH",
    "MAX_ERRORS",
    "MAX_SAFE_INT",
    "NAME_PATTERN",
    "RESERVED_LABEL_PREFIX",
    "decode_target",
    "raw_version",
    "read_target",
]

NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?")
DEFAULT_MAX_SERVICES = 100
MAX_ERRORS = 100  # errors listed in one ack; a final entry says when more were left out


def decode_target(
    payload: bytes, max_services: int = DEFAULT_MAX_SERVICES
) -> Target | list[FieldError]:
    """Decode a target, or return the errors found (path and message). Never raises."""
    return read_target(payload, max_services)[0]


def read_target(
    payload: bytes, max_services: int = DEFAULT_MAX_SERVICES
) -> tuple[Target | list[FieldError], int | None]:
    """`decode_target` and, even for a rejected target, its version when it is one a target
    may carry, so that an ack names the version it answers (the payload is read once)."""
    try:  # a service needs at most ~10 arrays and objects; 20 leaves room for more keys
        raw, repeated = load(payload, max(MAX_CONTAINERS, 20 * max_services))
    except Malformed as exc:
        return [exc.error], None
    try:
        target: Target | None = msgspec.convert(raw, Target, strict=True)
    except msgspec.ValidationError:
        target = None
    schema = _check(raw, Target, "$") if target is None else iter(())
    rules = semantic_errors(raw, max_services)
    found = chain(repeated, _over_cap(raw, max_services), schema, rules)
    errors = list(islice(found, MAX_ERRORS + 1))
    if len(errors) > MAX_ERRORS:
        errors[MAX_ERRORS:] = [
            FieldError("$", f"more errors not listed after the first {MAX_ERRORS}")
        ]
    return (errors if errors or target is None else target), raw_version(raw)


def raw_version(raw: Any) -> int | None:
    version = raw.get("version") if isinstance(raw, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and 0 <= version <= MAX_SAFE_INT:
        return version
    return None


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
            yield from _check(item, typing.get_args(annotation)[1], key_path(path, key))
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
            yield FieldError(key_path(path, key), "unknown field")
    for name, info in fields.items():
        if name in value:
            yield from _check(value[name], hints[info.name], f"{path}.{name}")
        elif info.required:
            yield FieldError(f"{path}.{name}", "missing required field")


def _raw_apps(raw: Any) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(path, key, app) for every app object, whether `apps` is an object or a list."""
    apps = raw.get("apps") if isinstance(raw, dict) else None
    if isinstance(apps, dict):
        for key, app in apps.items():
            if isinstance(app, dict):
                yield key_path("$.apps", key), key, app
    elif isinstance(apps, list):
        for index, app in enumerate(apps):
            if isinstance(app, dict):
                yield f"$.apps[{index}]", None, app


def _raw_services(raw: Any, apps: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, service) for every service object of the first `apps` apps (all by default)."""
    for app_path, _, app in islice(_raw_apps(raw), apps):
        services = app.get("services")
        for index, service in enumerate(services if isinstance(services, list) else []):
            if isinstance(service, dict):
                yield f"{app_path}.services[{index}]", service


def _over_cap(raw: Any, max_services: int) -> Iterator[FieldError]:
    """The first app or service past the cap: each service costs a container, a pull and
    topics, and no more apps than that are needed to hold them."""
    apps = raw.get("apps") if isinstance(raw, dict) else None
    listed = apps.values() if isinstance(apps, dict) else apps if isinstance(apps, list) else []
    if len(listed) > max_services:
        beyond = next(islice(_raw_apps(raw), max_services, None), None)
        if beyond is not None:
            yield FieldError(beyond[0], f"more than {max_services} apps in one target")
        return
    services = (a.get("services") for a in listed if isinstance(a, dict))
    if sum(len(s) for s in services if isinstance(s, list)) <= max_services:
        return  # counted without building a path for each service
    service = next(islice(_raw_services(raw), max_services, None), None)
    if service is not None:
        yield FieldError(service[0], f"more than {max_services} services in one target")


def semantic_errors(raw: Any, max_services: int = DEFAULT_MAX_SERVICES) -> Iterator[FieldError]:
    """Rules beyond the schema (names, uniqueness, references, config), for the services
    within the cap (those beyond it are refused by the cap, unexamined).

    Each rule looks at its raw field whenever that field has the right type (the schema check
    reports it otherwise), so one ack lists every error, schema and rules alike."""
    app_ids: dict[int, str] = {}
    for app_path, key, app in islice(_raw_apps(raw), max_services):
        app_id = app.get("appId")
        if key is not None and isinstance(app_id, int) and key != str(app_id):
            yield FieldError(f"{app_path}.appId", f"appId {app_id} does not match key {key!r}")
        if key is None and isinstance(app_id, int) and app_id in app_ids:
            message = f"duplicate appId {app_id}, first at {app_ids[app_id]}"
            yield FieldError(f"{app_path}.appId", message)
        if isinstance(app_id, int):
            app_ids.setdefault(app_id, app_path)
    seen: dict[str, str] = {}
    for path, service in islice(_raw_services(raw, max_services), max_services):
        name = service.get("serviceName")
        if isinstance(name, str) and name in seen:
            message = f"duplicate service name {name!r}, first at {seen[name]}"
            yield FieldError(f"{path}.serviceName", message)
        if isinstance(name, str):
            seen.setdefault(name, path)
        yield from _service_errors(service, path)


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
    yield from config_errors(config, f"{path}.config")
