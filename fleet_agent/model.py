"""Wire types of the public contract (target, ack, status, device state) as msgspec Structs.

Everything that crosses a boundary (a file, MQTT, status.json) is one of these types, so the
shape of the contract lives in one place. Decoding with every error collected lives in
`validate.py`; this module only declares shapes and small pure helpers.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Literal

import msgspec

RestartPolicy = Literal["always", "unless-stopped", "on-failure", "no"]
ServiceState = Literal[
    "pending", "downloading", "starting", "running", "stopping", "stopped", "exited", "error"
]
ErrorType = Literal[
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "StartFailure", "CrashLoopBackOff"
]
MAX_SAFE_INT = 2**53 - 1  # the largest integer every JSON tool (JavaScript included) holds exactly
# Versions and ids: what a cloud in any language can send back and compare without rounding.
NonNegative = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]


class ServiceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    """How a service's container is run; every key is optional."""

    image: str | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = {}
    ports: list[str] = []
    volumes: list[str] = []
    network_mode: str | None = None
    restart: RestartPolicy = "unless-stopped"
    labels: dict[str, str] = {}
    # Governed by the device policy (policy.py); all off by default.
    privileged: bool = False
    devices: list[str] = []
    cap_add: list[str] = []
    user: str | None = None
    read_only: bool = False
    mem_limit: int | str | None = None  # bytes, or "256m" ("b", "k", "m", "g")
    cpus: Annotated[float, msgspec.Meta(gt=0)] | None = None


class Service(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    service_id: NonNegative
    service_name: str
    image_name: str
    config: ServiceConfig = ServiceConfig()


class App(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    app_id: NonNegative
    app_name: str = ""
    services: list[Service] = []


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    """The desired state of one device, as the cloud publishes it."""

    apps: dict[str, App] | list[App]
    version: NonNegative | None = None

    def app_list(self) -> list[App]:
        return list(self.apps.values()) if isinstance(self.apps, dict) else list(self.apps)


class DesiredService(msgspec.Struct, frozen=True):
    """One service of the target, flattened with its app and its config hash."""

    app_id: int
    app_name: str
    service: Service
    config_hash: str

    @property
    def name(self) -> str:
        return self.service.service_name


class FieldError(msgspec.Struct, frozen=True):
    path: str
    message: str


class Ack(msgspec.Struct, frozen=True, rename="camel"):
    version: int | None
    accepted: bool
    code: int
    received_at: str
    errors: list[FieldError] = []


class ServiceError(msgspec.Struct, frozen=True, rename="camel"):
    type: ErrorType
    message: str
    timestamp: str
    retry_count: int
    max_retries: int
    next_retry: str | None
    exhausted: bool


class Progress(msgspec.Struct, frozen=True, rename="camel"):
    """How far an image pull is, all layers combined (contract v1.1)."""

    percent: int
    bytes_done: int
    bytes_total: int | None


class ServiceStatus(msgspec.Struct, frozen=True, rename="camel"):
    device_id: str
    app_id: int
    app_name: str
    service_id: int
    service_name: str
    image_name: str
    service_status: ServiceState
    container_id: str | None
    running_image: str | None
    restart_count: int
    error: ServiceError | None
    target_version: int | None
    updated_at: str
    exit_code: int | None = None
    progress: Progress | None = None  # while `downloading`


class DeviceState(msgspec.Struct, frozen=True, rename="camel"):
    device_id: str
    agent_version: str
    target_version: int | None
    converged: bool
    counts: dict[str, int]
    updated_at: str


@functools.lru_cache(maxsize=256)  # one pass formats the same `now` for every service
def iso(ts: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with milliseconds and `Z`, as the contract wants."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Event(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """One step outcome or state change, for live dashboards (never retained)."""

    device_id: str
    type: str
    timestamp: str
    service: str | None = None
    ok: bool = True
    message: str = ""
    error_type: str | None = None
    retry_count: int | None = None
    next_retry: str | None = None


class Alert(msgspec.Struct, frozen=True, rename="camel"):
    """The active alert of a service (or of the device, service `_agent`)."""

    device_id: str
    service: str
    severity: str
    type: str
    message: str
    raised_at: str
    updated_at: str
    retry_count: int | None = None


AlertEvent = Literal["raised", "escalated", "cleared"]


class AlertChange(msgspec.Struct, frozen=True, rename="camel"):
    """One alert transition of a pass, the same for every sink (MQTT, webhooks, ...):
    `raised` (new, or a new type at no higher severity), `escalated` (a higher severity),
    `cleared` (resolved or gone; `alert` is the one that was active)."""

    event: AlertEvent
    service: str
    alert: Alert


class HistoryEntry(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    timestamp: str
    service_status: str
    error_type: str | None = None
    message: str | None = None
    retry_count: int | None = None
