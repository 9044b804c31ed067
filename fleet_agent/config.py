"""Agent settings: a TOML file, overridden by `FLEET_AGENT_*` environment variables.

One Struct declares every setting with its contract default; the file and the environment are
merged as plain dicts and converted once, so a bad value is reported with its name and reason.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec

from fleet_agent import policy, signing
from fleet_agent.admission import Admission
from fleet_agent.backoff import BackoffPolicy
from fleet_agent.simconfig import SimConfig, is_sim
from fleet_agent.validate import DEFAULT_MAX_SERVICES, NAME_PATTERN

ENV_PREFIX = "FLEET_AGENT_"
WEEK = 7 * 24 * 3600.0
# Finite and sane: `inf` seconds would reach APScheduler and the engine as an overflow.
Seconds = Annotated[float, msgspec.Meta(gt=0, le=WEEK)]
Positive = Seconds
CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)


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
    reconcile_interval: Seconds = 30.0
    backoff_initial: Seconds = 10.0
    backoff_max: Seconds = 300.0
    max_retries: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10
    crash_reset_after: Seconds = 600.0
    pull_timeout: Seconds = 300.0
    pull_concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 3
    stop_timeout: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 10
    max_target_bytes: Annotated[int, msgspec.Meta(ge=1, le=64 * 1024 * 1024)] = 256 * 1024
    max_services: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = DEFAULT_MAX_SERVICES
    # a link that stops carrying traffic is noticed within 1.5x this many seconds
    mqtt_keepalive: Annotated[int, msgspec.Meta(ge=4, le=3600)] = 30
    # a target that could not be stored is retried from memory after these (doubling) delays
    store_retry_initial: Seconds = 1.0
    store_retry_max: Seconds = 60.0
    # a report of a pass with steps under way waits this long for the pass their end kicks, so
    # a quick change sends each retained topic once (a slower one shows its progress after it)
    publish_hold: Seconds = 1.0
    log_format: Literal["console", "json"] | None = None
    labels: dict[str, str] = {}
    # integrations (docs/integrations.md)
    webhook_url: str | None = None  # one URL or several, comma-separated
    webhook_secret: str | None = None
    webhook_timeout: Positive = 5.0
    webhook_retry_initial: Positive = 1.0
    webhook_retry_max: Positive = 60.0
    summary_at: str = "00:00"  # HH:MM, device local time
    summary_every: Positive | None = None  # seconds: replaces the daily schedule (tests, demos)
    summary_window: Positive = 86400.0
    ha_discovery: bool = False
    ha_prefix: str = "homeassistant"
    # security (docs/security.md)
    mqtt_password_file: str | None = None  # read at start-up; keeps it out of process listings
    policy_file: str | None = None  # the device policy (docs/security.md); else the default
    trusted_keys: str | None = None  # JWK Set of Ed25519 public keys for signed targets
    require_signed: bool = False

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.device_id):
            raise ValueError(f"device_id {self.device_id!r} must match {NAME_PATTERN.pattern}")
        if self.mqtt_enabled:
            _check_mqtt_url(self.mqtt_url)
        _check_topic_prefix(self.topic_prefix)
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max {self.backoff_max} is below backoff_initial {self.backoff_initial}"
            )
        if is_sim(self.docker_host):
            SimConfig.from_url(self.docker_host or "")  # raises on a bad parameter
        for hook in self.webhook_urls:
            shown, parts = shown_url(hook), urlsplit(hook)
            if shown == "<bad url>" or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook_url {shown!r}: use http://host/path or https://")
        if not CLOCK.fullmatch(self.summary_at):
            raise ValueError(f"summary_at {self.summary_at!r}: use HH:MM (00:00 to 23:59)")
        if not self.ha_prefix or any(c in self.ha_prefix for c in "+#") or "//" in self.ha_prefix:
            raise ValueError(f"ha_prefix {self.ha_prefix!r}: a topic without + # or empty levels")
        for key in self.labels:
            if not key or "=" in key or "," in key:
                raise ValueError(f"labels: bad key {key!r}")

    @property
    def webhook_urls(self) -> list[str]:
        return [u.strip() for u in (self.webhook_url or "").split(",") if u.strip()]

    @property
    def summary_time(self) -> tuple[int, int]:
        hour, minute = self.summary_at.split(":")
        return int(hour), int(minute)

    @property
    def mqtt_enabled(self) -> bool:
        return self.mqtt_url not in ("", "none")

    @property
    def backoff(self) -> BackoffPolicy:
        return BackoffPolicy(self.backoff_initial, self.backoff_max, self.max_retries)

    @property
    def resolved_log_format(self) -> str:
        return self.log_format or ("console" if sys.stderr.isatty() else "json")


def shown_url(url: str) -> str:
    """A URL fit for logs and errors: no credentials, no query (tokens often live there)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<bad url>"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def parse_labels(text: str) -> dict[str, str]:
    """`key=value,key=value` (FLEET_AGENT_LABELS) into a dict; spaces around parts ignored."""
    labels: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"FLEET_AGENT_LABELS: {item.strip()!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def _check_mqtt_url(value: str) -> None:
    """What the MQTT link will use, checked now: a bad port must not surface as a traceback."""
    url = urlsplit(value)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ValueError(f"mqtt_url {value!r}: use mqtt://host:port, mqtts://host:port or none")
    if url.username is not None or url.password is not None:
        raise ValueError(
            f"mqtt_url {value!r}: credentials go in {ENV_PREFIX}MQTT_USERNAME and _PASSWORD"
        )
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"mqtt_url {value!r}: no path, query or fragment, just host and port")
    _, colon, port = url.netloc.rpartition("]")[2].rpartition(":")
    if colon and not _PORT.fullmatch(port):
        raise ValueError(f"mqtt_url {value!r}: port {port!r} is not a number")
    if colon and not 1 <= int(port) <= 65535:
        raise ValueError(f"mqtt_url {value!r}: port {int(port)} is out of range 1-65535")


def _check_topic_prefix(prefix: str) -> None:
    """One or more non-empty topic levels, free of wildcards, not a broker's `$` topic."""
    if any(c in prefix for c in "+#\x00"):
        raise ValueError(f"topic_prefix {prefix!r} must not hold '+', '#' or NUL")
    if not all(prefix.split("/")):
        raise ValueError(f"topic_prefix {prefix!r} has an empty level (leading, trailing or //)")
    if prefix.startswith("$"):
        raise ValueError(f"topic_prefix {prefix!r} must not start with '$' (broker topics)")


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
        except (OSError, ValueError) as exc:  # TOML and UTF-8 errors are ValueErrors
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    values |= _from_env(dict(os.environ) if environ is None else environ)
    if isinstance(values.get("mqtt_protocol"), int):  # `mqtt_protocol = 5` in TOML
        values["mqtt_protocol"] = str(values["mqtt_protocol"])
    if isinstance(values.get("labels"), str):
        values["labels"] = parse_labels(values["labels"])
    if "device_id" not in values:
        raise ConfigError(f"{ENV_PREFIX}DEVICE_ID (or device_id in the config file) is required")
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc
    return _with_password_file(settings)


def _with_password_file(settings: Settings) -> Settings:
    """The password from its file (first line), unless one is given directly."""
    if settings.mqtt_password_file is None or settings.mqtt_password is not None:
        return settings
    try:
        lines = Path(settings.mqtt_password_file).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read mqtt_password_file: {exc}") from exc
    return msgspec.structs.replace(settings, mqtt_password=lines[0] if lines else "")


def admission(settings: Settings) -> Admission:
    """The device's own demands on targets: its policy and its trusted keys (read once)."""
    try:
        rules = policy.load(Path(settings.policy_file)) if settings.policy_file else policy.Policy()
        keys = Path(settings.trusted_keys) if settings.trusted_keys else None
        trust = signing.load_trust(keys, settings.require_signed)
    except (policy.PolicyError, signing.SigningError) as exc:
        raise ConfigError(str(exc)) from exc
    return Admission(settings.device_id, rules, trust, settings.state_dir, os.path.realpath)
