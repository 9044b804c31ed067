"""Builders for the pure core's inputs: services, targets, containers, runtimes and reports.

Times are plain epoch floats; `T0` is 2025-10-24T10:15:00.000Z, the contract's example moment.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure, record_failure
from fleet_agent.model import (
    App,
    DesiredService,
    DeviceState,
    ErrorType,
    Event,
    Service,
    ServiceConfig,
    ServiceError,
    ServiceState,
    ServiceStatus,
    Target,
    iso,
)
from fleet_agent.report import Report
from fleet_agent.runtime import Container, ServiceRuntime
from fleet_agent.spec import config_hash

DEVICE = "dev-001"
APP_ID = 1001
APP_NAME = "test-error-handling"
IMAGE = "nodered/node-red:latest"
T0 = 1761300900.0  # 2025-10-24T10:15:00.000Z
POLICY = BackoffPolicy()


def service(
    name: str = "nodered", image: str = IMAGE, service_id: int = 1, **config: Any
) -> Service:
    return Service(service_id, name, image, ServiceConfig(**config))


def desired(
    name: str = "nodered",
    image: str = IMAGE,
    *,
    service_id: int = 1,
    app_id: int = APP_ID,
    app_name: str = APP_NAME,
    **config: Any,
) -> DesiredService:
    svc = service(name, image, service_id, **config)
    return DesiredService(app_id, app_name, svc, config_hash(app_id, svc))


def container(
    of: DesiredService,
    id: str = "c-1",
    *,
    state: str = "running",
    exit_code: int | None = None,
    config_hash: str | None = None,
    image: str | None = None,
) -> Container:
    """A container of `of`'s service, at its target config unless `config_hash` says otherwise."""
    return Container(
        id=id,
        name=f"fleet.{DEVICE}.{of.name}",
        service=of.name,
        config_hash=of.config_hash if config_hash is None else config_hash,
        image=of.service.image_name if image is None else image,
        state=state,
        exit_code=exit_code,
    )


def runtime(of: DesiredService, **fields: Any) -> ServiceRuntime:
    return ServiceRuntime(config_hash=of.config_hash, **fields)


def failed(
    times: list[float],
    kind: ErrorType = "ImagePullBackOff",
    message: str = "manifest unknown",
    policy: BackoffPolicy = POLICY,
    retryable: bool = True,
) -> Backoff:
    """A backoff after one failure at each of `times`."""
    state = Backoff()
    for at in times:
        state = record_failure(state, policy, Failure(kind, message, at, retryable))
    return state


def target(*services: Service, version: int | None = None, app_id: int = APP_ID) -> Target:
    return Target({str(app_id): App(app_id, APP_NAME, list(services))}, version)


def target_doc(version: int | None = 7, **service_fields: Any) -> dict[str, Any]:
    """A contract-shaped target document (plain JSON data) with one nodered service."""
    svc: dict[str, Any] = {
        "serviceId": 1,
        "serviceName": "nodered",
        "imageName": IMAGE,
        "config": {"ports": ["1880:1880"], "restart": "unless-stopped"},
    }
    svc.update(service_fields)
    doc: dict[str, Any] = {
        "apps": {str(APP_ID): {"appId": APP_ID, "appName": APP_NAME, "services": [svc]}}
    }
    if version is not None:
        doc["version"] = version
    return doc


def encode(doc: Any) -> bytes:
    return msgspec.json.encode(doc)


def status_error(
    kind: ErrorType = "ImagePullBackOff",
    message: str = "manifest unknown",
    *,
    retry_count: int = 1,
    max_retries: int = 10,
    at: float = T0,
    next_retry: float | None = T0 + 10,
    exhausted: bool = False,
) -> ServiceError:
    """A status `error` block; by default the first pull failure, retried 10 s later."""
    return ServiceError(
        type=kind,
        message=message,
        timestamp=iso(at),
        retry_count=retry_count,
        max_retries=max_retries,
        next_retry=None if next_retry is None else iso(next_retry),
        exhausted=exhausted,
    )


def status(
    name: str = "nodered",
    service_status: ServiceState = "running",
    error: ServiceError | None = None,
    *,
    at: float = T0,
    image: str = IMAGE,
    service_id: int = 1,
    container_id: str | None = "c-1",
) -> ServiceStatus:
    """A published service status, stamped `at`; `container_id` runs `image` when set."""
    return ServiceStatus(
        device_id=DEVICE,
        app_id=APP_ID,
        app_name=APP_NAME,
        service_id=service_id,
        service_name=name,
        image_name=image,
        service_status=service_status,
        container_id=container_id,
        running_image=image if container_id else None,
        restart_count=0,
        error=error,
        target_version=7,
        updated_at=iso(at),
    )


def state_doc(
    *statuses: ServiceStatus, at: float = T0, converged: bool | None = None
) -> DeviceState:
    """The device state summing up `statuses`; converged when they all run, unless told."""
    counts: dict[str, int] = {}
    for one in statuses:
        counts[one.service_status] = counts.get(one.service_status, 0) + 1
    if converged is None:
        converged = all(one.service_status == "running" for one in statuses)
    return DeviceState(DEVICE, "0.1.0", 7, converged, counts, iso(at))


def report(
    *statuses: ServiceStatus,
    at: float = T0,
    events: list[Event] | None = None,
    engine_error: str | None = None,
    crash_settling: list[str] | None = None,
) -> Report:
    """One pass's report of `statuses`, its device state stamped `at`."""
    return Report(
        state_doc(*statuses, at=at),
        list(statuses),
        events or [],
        engine_error,
        crash_settling or [],
    )
