"""Agent settings: a TOML file, overridden by `FLEET_AGENT_*` environment variables.

One Struct declares every setting with its contract default; the file and the environment are
merged as plain dicts and converted once, so a bad value is reported with its name and reason.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from fleet_agent.backoff import BackoffPolicy
from fleet_agent.validate import NAME_PATTERN

ENV_PREFIX = "FLEET_AGENT_"
Positive = Annotated[float, msgspec.Meta(gt=0)]


class ConfigError(Exception):
    pass


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    device_id: str
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = "fleet"
    docker_host: str | None = None
    state_dir: str = "/var/lib/fleet-agent"
    reconcile_interval: Positive = 30.0
    backoff_initial: Positive = 10.0
    backoff_max: Positive = 300.0
    max_retries: Annotated[int, msgspec.Meta(ge=1)] = 10
    crash_reset_after: Positive = 600.0
    pull_timeout: Positive = 300.0
    pull_concurrency: Annotated[int, msgspec.Meta(ge=1)] = 3
    stop_timeout: Annotated[int, msgspec.Meta(ge=0)] = 10
    max_target_bytes: Annotated[int, msgspec.Meta(ge=1)] = 256 * 1024
    log_format: Literal["console", "json"] | None = None

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.device_id):
            raise ValueError(f"device_id {self.device_id!r} must match {NAME_PATTERN.pattern}")
        url = urlsplit(self.mqtt_url)
        if self.mqtt_enabled and (url.scheme not in ("mqtt", "mqtts") or not url.hostname):
            raise ValueError(
                f"mqtt_url {self.mqtt_url!r}: use mqtt://host:port, mqtts://host:port or none"
            )

    @property
    def mqtt_enabled(self) -> bool:
        return self.mqtt_url not in ("", "none")

    @property
    def backoff(self) -> BackoffPolicy:
        return BackoffPolicy(self.backoff_initial, self.backoff_max, self.max_retries)

    @property
    def resolved_log_format(self) -> str:
        return self.log_format or ("console" if sys.stderr.isatty() else "json")


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    names = {field.name for field in msgspec.structs.fields(Settings)}
    values: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() in names:
            values[key[len(ENV_PREFIX) :].lower()] = value
    if environ.get("DOCKER_HOST"):
        values["docker_host"] = environ["DOCKER_HOST"]
    return values


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Merge file and environment (environment wins) into validated settings."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    values |= _from_env(dict(os.environ) if environ is None else environ)
    if isinstance(values.get("mqtt_protocol"), int):  # `mqtt_protocol = 5` in TOML
        values["mqtt_protocol"] = str(values["mqtt_protocol"])
    if "device_id" not in values:
        raise ConfigError(f"{ENV_PREFIX}DEVICE_ID (or device_id in the config file) is required")
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
