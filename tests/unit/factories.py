"""Builders for the pure core's inputs: services, targets, containers and runtimes.

Times are plain epoch floats; `T0` is 2025-10-24T10:15:00.000Z, the contract's example moment.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure, record_failure
from fleet_agent.model import App, DesiredService, ErrorType, Service, ServiceConfig, Target
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
        name=f"fleet_{DEVICE}_{of.name}",
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
