"""A `docker-compose.yml` as a fleet target (pure but for reading `env_file`s).

Only what a device can honour is taken: per service `image`, `command`, `entrypoint`,
`environment` (map or list), `env_file`, `ports`, `volumes`, `restart`, `labels`,
`network_mode`; at the top `services`, `name` (the app name), `version` (obsolete, ignored by
Compose too), named `volumes` declarations without options, and `x-fleet` (`appId`, `appName`,
`version`). Every other key is an error with its path: nothing is silently dropped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from fleet_agent import reference
from fleet_agent.model import FieldError
from fleet_agent.validate import NAME_PATTERN

SERVICE_KEYS = (
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "volumes",
    "restart",
    "labels",
    "network_mode",
)
TOP_KEYS = ("services", "name", "version", "volumes", "x-fleet")
FLEET_KEYS = ("appId", "appName", "version")
RESTARTS = ("always", "unless-stopped", "on-failure", "no")
DEFAULT_APP_ID = 1
_INTERPOLATION = re.compile(r"(?<!\$)\$(\{|[A-Za-z_])")


def is_compose(doc: Any) -> bool:
    return isinstance(doc, dict) and "services" in doc and "apps" not in doc


class _Errors(list[FieldError]):
    def add(self, path: str, message: str) -> None:
        self.append(FieldError(path, message))


def to_target(
    doc: dict[str, Any], base: Path, default_name: str = "app"
) -> tuple[dict[str, Any], list[FieldError]]:
    """The target for a compose document, and every error found (the target is only usable
    when the list is empty). `base`: the folder `env_file` paths are relative to."""
    errors = _Errors()
    for key in doc:
        if key not in TOP_KEYS:
            errors.add(f"$.{key}", "not supported by fleet-agent")
    fleet = _fleet(doc.get("x-fleet"), errors)
    _named_volumes(doc.get("volumes"), errors)
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        errors.add("$.services", "expected a non-empty mapping of services")
        services = {}
    converted = [
        _service(name, spec, index + 1, base, errors)
        for index, (name, spec) in enumerate(services.items())
    ]
    app_id = fleet.get("appId", DEFAULT_APP_ID)
    app_name = fleet.get("appName") or doc.get("name") or default_name
    target: dict[str, Any] = {
        "apps": {str(app_id): {"appId": app_id, "appName": str(app_name), "services": converted}}
    }
    if "version" in fleet:
        target["version"] = fleet["version"]
    return target, list(errors)


def _fleet(value: Any, errors: _Errors) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add("$.x-fleet", "expected a mapping (appId, appName, version)")
        return {}
    for key in value:
        if key not in FLEET_KEYS:
            errors.add(f"$.x-fleet.{key}", "not supported by fleet-agent")
    for key in ("appId", "version"):
        if key in value and (
            not isinstance(value[key], int) or isinstance(value[key], bool) or value[key] < 0
        ):
            errors.add(f"$.x-fleet.{key}", "expected an integer >= 0")
    return {k: v for k, v in value.items() if k in FLEET_KEYS}


def _named_volumes(value: Any, errors: _Errors) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        errors.add("$.volumes", "expected a mapping of named volumes")
        return
    for name, options in value.items():
        if options not in (None, {}):
            errors.add(f"$.volumes.{name}", "volume options are not supported (named volumes only)")


def _service(name: Any, spec: Any, service_id: int, base: Path, errors: _Errors) -> dict[str, Any]:
    path = f"$.services.{name}"
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        errors.add(path, f"a service name must match {NAME_PATTERN.pattern}")
    if not isinstance(spec, dict):
        errors.add(path, "expected a mapping")
        return {"serviceId": service_id, "serviceName": str(name), "imageName": ""}
    for key in spec:
        if key not in SERVICE_KEYS:
            errors.add(f"{path}.{key}", "not supported by fleet-agent")
    image = spec.get("image")
    if not isinstance(image, str):
        errors.add(f"{path}.image", "required: an image reference (build is not supported)")
        image = ""
    else:
        try:
            reference.parse(image)
        except ValueError as exc:
            errors.add(f"{path}.image", str(exc))
    config = _config(spec, path, base, errors)
    return {"serviceId": service_id, "serviceName": str(name), "imageName": image, "config": config}


def _config(spec: dict[str, Any], path: str, base: Path, errors: _Errors) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, target_key in (("command", "command"), ("entrypoint", "entrypoint")):
        if key in spec:
            config[target_key] = _argv(spec[key], f"{path}.{key}", errors)
    environment = _env_files(spec.get("env_file"), f"{path}.env_file", base, errors)
    environment |= _pairs(
        spec.get("environment"), f"{path}.environment", errors, values_needed=True
    )
    if environment:
        config["environment"] = environment
    for key in ("ports", "volumes"):
        if key in spec:
            config[key] = _short_list(spec[key], f"{path}.{key}", errors, key == "volumes")
    if "restart" in spec:
        if spec["restart"] not in RESTARTS:
            errors.add(f"{path}.restart", f"expected one of {', '.join(RESTARTS)}")
        config["restart"] = spec["restart"]
    if "labels" in spec:
        config["labels"] = _pairs(spec["labels"], f"{path}.labels", errors, values_needed=False)
    if "network_mode" in spec:
        if not isinstance(spec["network_mode"], str):
            errors.add(f"{path}.network_mode", "expected a string")
        config["networkMode"] = spec["network_mode"]
    for key, value in config.items():
        _no_interpolation(value, f"{path}.{key}", errors)
    return {key: _literal(value) for key, value in config.items()}


def _argv(value: Any, path: str, errors: _Errors) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            errors.add(path, f"cannot split into words: {exc}")
            return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    errors.add(path, "expected a string or a list of strings")
    return []


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _pairs(value: Any, path: str, errors: _Errors, values_needed: bool) -> dict[str, str]:
    """A map, or a list of `KEY=VALUE`, as Compose allows for environment and labels."""
    if value is None:
        return {}
    result: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            text = _scalar(item) if item is not None else ("" if not values_needed else None)
            if text is None:
                errors.add(
                    f"{path}.{key}", "expected a value (taking it from the shell is not supported)"
                )
                continue
            result[str(key)] = text
        return result
    if isinstance(value, list):
        for index, item in enumerate(value):
            key, sep, text = item.partition("=") if isinstance(item, str) else ("", "", "")
            if not key or (values_needed and not sep):
                errors.add(f"{path}[{index}]", "expected KEY=VALUE")
                continue
            result[key] = text
        return result
    errors.add(path, "expected a mapping or a list of KEY=VALUE")
    return {}


def _env_files(value: Any, path: str, base: Path, errors: _Errors) -> dict[str, str]:
    files = [value] if isinstance(value, str) else value
    if value is None:
        return {}
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        errors.add(path, "expected a path or a list of paths")
        return {}
    result: dict[str, str] = {}
    for index, name in enumerate(files):
        where = path if isinstance(value, str) else f"{path}[{index}]"
        try:
            text = (base / name).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            errors.add(where, f"cannot read {name}: {exc}")
            continue
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, text_value = line.removeprefix("export ").partition("=")
            if not sep or not key.strip():
                errors.add(where, f"{name} line {number}: expected KEY=VALUE")
                continue
            result[key.strip()] = _unquote(text_value.strip())
    return result


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _short_list(value: Any, path: str, errors: _Errors, volumes: bool) -> list[str]:
    if not isinstance(value, list):
        errors.add(path, "expected a list")
        return []
    result = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if isinstance(item, dict):
            errors.add(where, "the long syntax is not supported; use the short string form")
        elif isinstance(item, int) and not isinstance(item, bool) and not volumes:
            result.append(str(item))
        elif not isinstance(item, str):
            errors.add(where, "expected a string")
        elif volumes and item.startswith((".", "~")):
            errors.add(
                where, "a relative host path means nothing on the device; use an absolute path"
            )
        else:
            result.append(item)
    return result


def _no_interpolation(value: Any, path: str, errors: _Errors) -> None:
    texts = (
        value
        if isinstance(value, list)
        else list(value.values())
        if isinstance(value, dict)
        else [value]
    )
    if any(isinstance(t, str) and _INTERPOLATION.search(t) for t in texts):
        errors.add(
            path,
            "variable interpolation ($VAR, ${VAR}) is not supported; write the value"
            " ($$ for a literal $)",
        )


def _literal(value: Any) -> Any:
    """Compose's `$$` is a literal `$`."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value
