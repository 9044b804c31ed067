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

from fleet_agent import hostkeys
from fleet_agent.model import DesiredService, Service, ServiceConfig, Target

LABEL_PREFIX = "io.fleet-agent."
LABEL_MANAGED = LABEL_PREFIX + "managed"
LABEL_DEVICE = LABEL_PREFIX + "device"
LABEL_SERVICE = LABEL_PREFIX + "service"
LABEL_APP_ID = LABEL_PREFIX + "app-id"
LABEL_SERVICE_ID = LABEL_PREFIX + "service-id"
LABEL_CONFIG_HASH = LABEL_PREFIX + "config-hash"
LABEL_VOLUME = LABEL_PREFIX + "volume"


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
    volumes: dict[str, dict[str, str]] = {}  # named volumes to create first, with their labels
    privileged: bool = False
    devices: list[str] = []
    cap_add: list[str] = []
    user: str | None = None
    read_only: bool = False
    mem_limit: int | None = None
    nano_cpus: int | None = None


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
        **_host_keys(config),
    }
    return hashlib.sha256(msgspec.json.encode(canonical, order="sorted")).hexdigest()


def _host_keys(config: ServiceConfig) -> dict[str, object]:
    """Added to the hash only when set, so containers created before these keys existed keep
    their hash and are not recreated by an upgrade of the agent."""
    keys: dict[str, object] = {
        "privileged": config.privileged or None,
        "devices": sorted(config.devices) or None,
        "capAdd": sorted(hostkeys.capability(c) for c in config.cap_add) or None,
        "user": config.user,
        "readOnly": config.read_only or None,
        "memLimit": hostkeys.memory_bytes(config.mem_limit) if config.mem_limit else None,
        "cpus": config.cpus,
    }
    return {key: value for key, value in keys.items() if value is not None}


def volume_name(device_id: str, name: str) -> str:
    """Named volumes are the device's own: `data` of device `a` is `fleet.a.data` on the engine,
    so agents sharing an engine never share (or remove) each other's data."""
    return f"fleet.{device_id}.{name}"


def _binds(device_id: str, volumes: list[str]) -> tuple[list[str], dict[str, dict[str, str]]]:
    binds: list[str] = []
    named: dict[str, dict[str, str]] = {}
    for volume in volumes:
        source, _, rest = volume.partition(":")
        if not source.startswith("/"):
            scoped = volume_name(device_id, source)
            labels = {LABEL_MANAGED: "true", LABEL_DEVICE: device_id, LABEL_VOLUME: source}
            named[scoped] = labels
            source = scoped
        binds.append(f"{source}:{rest}")
    return binds, named


def _network_mode(device_id: str, mode: str | None) -> str | None:
    """`container:db` names the device's own service `db` (the policy made sure of that)."""
    if mode is None or not mode.startswith("container:"):
        return mode
    other = mode.removeprefix("container:")
    return mode if other.startswith("fleet.") else f"container:{container_name(device_id, other)}"


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
    binds, named = _binds(device_id, config.volumes)
    return ContainerSpec(
        name=container_name(device_id, service.service_name),
        image=service.image_name,
        command=config.command,
        entrypoint=config.entrypoint,
        environment=[f"{key}={value}" for key, value in sorted(config.environment.items())],
        ports=[binding for port in config.ports for binding in parse_port(port)],
        binds=binds,
        network_mode=_network_mode(device_id, config.network_mode),
        labels=labels,
        volumes=named,
        privileged=config.privileged,
        devices=list(config.devices),
        cap_add=[hostkeys.capability(c) for c in config.cap_add],
        user=config.user,
        read_only=config.read_only,
        mem_limit=hostkeys.memory_bytes(config.mem_limit) if config.mem_limit else None,
        nano_cpus=hostkeys.nano_cpus(config.cpus) if config.cpus else None,
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
