"""Reading a target file for `apply` (and `validate`): JSON, YAML, or a docker-compose file,
into the target document the agent decodes. Every problem is a `FieldError` with its path;
nothing raises past `load`'s `DocumentError`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from fleet_agent.model import FieldError
from fleet_agent.operator import compose

MAX_FILE_BYTES = 4 * 1024 * 1024


class DocumentError(Exception):
    def __init__(self, path: Path, errors: list[FieldError]) -> None:
        super().__init__(f"{path}: {len(errors)} error(s)")
        self.path = path
        self.errors = errors


def load(path: Path) -> dict[str, Any]:
    """The target document in `path`; compose files are converted. Raises `DocumentError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(
            path, [FieldError("$", f"cannot read {path}: {exc.strerror or exc}")]
        ) from exc
    if len(data) > MAX_FILE_BYTES:
        raise DocumentError(path, [FieldError("$", f"larger than {MAX_FILE_BYTES} bytes")])
    doc = _parse(path, data)
    if not isinstance(doc, dict):
        raise DocumentError(
            path, [FieldError("$", "expected a mapping (a target or a compose file)")]
        )
    if compose.is_compose(doc):
        target, errors = compose.to_target(doc, path.parent, _app_name(path))
        if errors:
            raise DocumentError(path, errors)
        return target
    return doc


def load_payload(path: Path) -> bytes:
    """The target document in `path` as the JSON payload a device receives (for `validate`,
    which then runs the device's own intake on it). Raises `DocumentError`."""
    return json.dumps(load(path)).encode()


def _app_name(path: Path) -> str:
    """Compose names a project after its folder; so do we, for the app name."""
    return path.resolve().parent.name or "app"


def _parse(path: Path, data: bytes) -> Any:
    if path.suffix.lower() == ".json":
        return _json(path, data)
    try:
        raw = yaml.safe_load(data)  # YAML 1.1 is a superset of JSON here
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(path, [FieldError("$", f"invalid YAML: {where}{problem}")]) from exc
    errors: list[FieldError] = []
    doc = _plain(raw, "$", errors)
    if errors:
        raise DocumentError(path, errors)
    return doc


def _json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise DocumentError(path, [FieldError("$", f"invalid JSON: {exc}")]) from exc


def _plain(value: Any, path: str, errors: list[FieldError]) -> Any:
    """YAML values as JSON ones: int keys become strings (`1001:`), dates are refused."""
    if isinstance(value, dict):
        return {_key(k): _plain(v, f"{path}.{_key(k)}", errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if isinstance(value, dt.date | dt.datetime | bytes):
        errors.append(FieldError(path, f"a {type(value).__name__} is not a JSON value; quote it"))
        return None
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else str(key)
