"""Broker connection settings of the operator tools: the agent's own `FLEET_AGENT_MQTT_*`
variables and TOML keys, so one environment serves both sides, plus an explicit `--url`.

Only the connection keys are read; a device id is not needed (the agent's other settings in
the same file or environment are ignored).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from fleet_agent.config import ENV_PREFIX

DEFAULT_URL = "mqtt://127.0.0.1:1883"


class SettingsError(Exception):
    """A connection setting is wrong or the broker cannot be reached (one line, no traceback)."""


class Connection(msgspec.Struct, frozen=True):
    """Where and how to reach the broker, and the topic prefix of the fleet."""

    mqtt_url: str = DEFAULT_URL
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = "fleet"

    def __post_init__(self) -> None:
        url = urlsplit(self.mqtt_url)
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise ValueError(
                f"mqtt_url {self.mqtt_url!r}: use mqtt://host:port or mqtts://host:port"
            )
        try:
            url.port  # noqa: B018 (a bad port raises here)
        except ValueError as exc:
            raise ValueError(f"mqtt_url {self.mqtt_url!r}: {exc}") from exc
        prefix = self.topic_prefix
        if (
            not prefix
            or any(c in prefix for c in "+#")
            or prefix.startswith("/")
            or prefix.endswith("/")
        ):
            raise ValueError(f"topic_prefix {prefix!r}: no '+', '#', or leading/trailing '/'")

    @property
    def host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or ""

    @property
    def port(self) -> int:
        url = urlsplit(self.mqtt_url)
        return url.port or (8883 if url.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"


_KEYS = {field.name for field in msgspec.structs.fields(Connection)} | {"mqtt_password_file"}


def _with_password_file(values: dict[str, Any]) -> dict[str, Any]:
    """`mqtt_password_file` like the agent: its first line, unless a password is given."""
    path = values.pop("mqtt_password_file", None)
    if path is None or values.get("mqtt_password") is not None:
        return values
    try:
        lines = Path(str(path)).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read mqtt_password_file: {exc}") from exc
    return {**values, "mqtt_password": lines[0] if lines else ""}


def load(
    path: Path | None = None, url: str | None = None, environ: dict[str, str] | None = None
) -> Connection:
    """File, then environment (wins), then `url` (wins over both); raises `SettingsError`."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config {path}: {exc}") from exc
    environ = dict(os.environ) if environ is None else environ
    for key, value in environ.items():
        name = key[len(ENV_PREFIX) :].lower()
        if key.startswith(ENV_PREFIX) and name in _KEYS:
            values[name] = value
    values = _with_password_file({key: value for key, value in values.items() if key in _KEYS})
    if url is not None:
        values["mqtt_url"] = url
    if isinstance(values.get("mqtt_protocol"), int):
        values["mqtt_protocol"] = str(values["mqtt_protocol"])
    try:
        return msgspec.convert(values, Connection, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc
