"""What container a service wants, and the config hash that says whether a container still fits.

The hash is computed over a canonical form of the service (lists that are sets in Docker's eyes,
like ports and volumes, sorted; maps sorted by key), so reordering ports or environment never
recreates a container. It is stored in the `io.fleet-agent.config-hash` label at creation and
compared on every pass without inspecting containers.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from fleet_agent.model import DesiredService, Service, Target

LABEL_PREFIX = "io.fleet-agent."
LABEL_MANAGED = LABEL_PREFIX + "managed"
LABEL_DEVICE = LABEL_PREFIX + "device"
LABEL_SERVICE = LABEL_PREFIX + "service"
LABEL_APP_ID = LABEL_PREFIX + "app-id"
LABEL_SERVICE_ID = LABEL_PREFIX + "service-id"
LABEL_CONFIG_HASH = LABEL_PREFIX + "config-hash"


class PortBinding(msgspec.Struct, frozen=True):
    container_port: int
    protocol: Literal["tcp", "udp", "sctp"]
    host_ip: str | None
    host_port: int | None


class ContainerSpec(msgspec.Struct, frozen=True):
    """Everything the engine needs to create a service's container, free of Docker SDK types."""

    name: str
    image: str
    command: list[str] | None
    entrypoint: list[str] | None
    environment: list[str]
    ports: list[PortBinding]
    binds: list[str]
    network_mode: str | None
    labels: dict[str, str]


def config_hash(app_id: int, service: Service) -> str:
    config = service.config
    canonical = {
        "appId": app_id,
        "serviceId": service.service_id,
        "image": service.image_name,
        "command": config.command,
        "entrypoint": config.entrypoint,
        "environment": config.environment,
        "ports": sorted(config.ports),
        "volumes": sorted(config.volumes),
        "networkMode": config.network_mode,
        "restart": config.restart,
        "labels": config.labels,
    }
    return hashlib.sha256(msgspec.json.encode(canonical, order="sorted")).hexdigest()


def desired_services(target: Target | None) -> list[DesiredService]:
    if target is None:
        return []
    return [
        DesiredService(app.app_id, app.app_name, service, config_hash(app.app_id, service))
        for app in target.app_list()
        for service in app.services
    ]


def container_name(device_id: str, service_name: str) -> str:
    """One fixed name per service: the engine itself then refuses a second container for it.

    `.` separates, since ids never hold one (`_` could: device `a` with service `b_c` and device
    `a_b` with service `c` would clash)."""
    return f"fleet.{device_id}.{service_name}"


def build_spec(device_id: str, desired: DesiredService) -> ContainerSpec:
    service = desired.service
    config = service.config
    labels = dict(config.labels) | {
        LABEL_MANAGED: "true",
        LABEL_DEVICE: device_id,
        LABEL_SERVICE: service.service_name,
        LABEL_APP_ID: str(desired.app_id),
        LABEL_SERVICE_ID: str(service.service_id),
        LABEL_CONFIG_HASH: desired.config_hash,
    }
    return ContainerSpec(
        name=container_name(device_id, service.service_name),
        image=service.image_name,
        command=config.command,
        entrypoint=config.entrypoint,
        environment=[f"{key}={value}" for key, value in sorted(config.environment.items())],
        ports=[binding for port in config.ports for binding in parse_port(port)],
        binds=list(config.volumes),
        network_mode=config.network_mode,
        labels=labels,
    )


def parse_port(mapping: str) -> list[PortBinding]:
    """`[ip:][host:]container[/proto]`, ranges included, as compose writes them."""
    rest, _, proto = mapping.partition("/")
    protocol: Literal["tcp", "udp", "sctp"] = (
        "udp" if proto == "udp" else ("sctp" if proto == "sctp" else "tcp")
    )
    host_ip: str | None = None
    if rest.startswith("["):
        end = rest.index("]")
        host_ip, rest = rest[1:end], rest[end + 2 :]
    parts = rest.split(":")
    if len(parts) == 3:
        host_ip, parts = parts[0], parts[1:]
    containers = _port_range(parts[-1])
    hosts: list[int | None] = (
        list(_port_range(parts[0])) if len(parts) == 2 and parts[0] else [None] * len(containers)
    )
    if len(hosts) != len(containers):
        raise ValueError(f"port ranges differ in length: {mapping!r}")
    return [PortBinding(c, protocol, host_ip, h) for c, h in zip(containers, hosts, strict=True)]


def _port_range(text: str) -> list[int]:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))
