"""The diff of target against observed containers, as steps per service (pure).

Each service gets its own ordered list of steps, independent of every other service, so one
failure never blocks another. Pulls are planned apart: they run in the background and a pass
never waits for them. Download-then-kill: an old container is stopped only once the new image is
on the device. Containers of other devices or without our labels never appear here at all (the
adapter lists only this device's), and a container whose service left the target is removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import msgspec

from fleet_agent.model import DesiredService
from fleet_agent.runtime import Container, ServiceRuntime, should_restart
from fleet_agent.spec import ContainerSpec, build_spec

_STATE_RANK = {"running": 0, "restarting": 1, "paused": 2, "exited": 3}


class Pull(msgspec.Struct, frozen=True, tag=True):
    service: str
    image: str


class Create(msgspec.Struct, frozen=True, tag=True):
    service: str
    spec: ContainerSpec


class Start(msgspec.Struct, frozen=True, tag=True):
    service: str
    container: str
    restart: bool = False


class Stop(msgspec.Struct, frozen=True, tag=True):
    service: str
    container: str


class Remove(msgspec.Struct, frozen=True, tag=True):
    service: str
    container: str


Step = Create | Start | Stop | Remove


def subject(step: Step) -> str:
    """What a step acts on, for people: the container name, or a short container id."""
    if isinstance(step, Create):
        return step.spec.name
    is_id = len(step.container) == 64 and all(c in "0123456789abcdef" for c in step.container)
    return step.container[:12] if is_id else step.container


class Plan(msgspec.Struct, frozen=True):
    pulls: list[Pull]
    jobs: dict[str, list[Step]]


def by_service(containers: list[Container]) -> dict[str | None, list[Container]]:
    grouped: dict[str | None, list[Container]] = defaultdict(list)
    for container in containers:
        grouped[container.service].append(container)
    return grouped


def current_container(desired: DesiredService, mine: list[Container]) -> Container | None:
    """The one container that stands for the service at its target config, if any."""
    if len(mine) == 1:  # the usual case, three times a service each pass: no sort
        only = mine[0]
        return (
            only if only.config_hash == desired.config_hash and only.state in _STATE_RANK else None
        )
    fitting = [c for c in mine if c.config_hash == desired.config_hash and c.state in _STATE_RANK]
    return min(fitting, key=lambda c: (_STATE_RANK[c.state], c.id), default=None)


def plan(
    device_id: str,
    desired: list[DesiredService],
    containers: list[Container],
    runtimes: dict[str, ServiceRuntime],
    pulling: set[tuple[str, str]],
    now: float,
    busy: Collection[str] = frozenset(),
) -> Plan:
    """`busy`: services whose steps are still under way get nothing new (not even a pull)."""
    grouped = by_service(containers)
    pulls: list[Pull] = []
    jobs: dict[str, list[Step]] = {}
    for service in desired:
        mine = grouped.pop(service.name, [])
        if service.name in busy:
            continue
        pull, steps = _plan_service(
            device_id,
            service,
            mine,
            runtimes[service.name],
            (service.name, service.config_hash) in pulling,
            now,
        )
        if pull:
            pulls.append(pull)
        if steps:
            jobs[service.name] = steps
    for name, leftovers in grouped.items():
        key = name or leftovers[0].name
        if key not in busy:
            jobs[key] = [step for c in leftovers for step in _retire(key, c)]
    return Plan(pulls, jobs)


def _retire(service: str, container: Container) -> list[Step]:
    stop: list[Step] = [Stop(service, container.id)] if container.running else []
    return [*stop, Remove(service, container.id)]


def _plan_service(
    device_id: str,
    desired: DesiredService,
    mine: list[Container],
    runtime: ServiceRuntime,
    pulling: bool,
    now: float,
) -> tuple[Pull | None, list[Step]]:
    keep = current_container(desired, mine)
    others = [c for c in mine if c is not keep]
    if keep is not None:
        steps = [step for c in others for step in _retire(desired.name, c)]
        return None, steps + _restart_steps(desired, keep, runtime, now)
    half_created = [c for c in others if c.config_hash == desired.config_hash]
    cleanup = [step for c in half_created for step in _retire(desired.name, c)]
    if pulling or not runtime.deploy.due(now):
        return None, cleanup
    if not runtime.image_ready:
        return Pull(desired.name, desired.service.image_name), cleanup
    spec = build_spec(device_id, desired)
    old = [step for c in others if c not in half_created for step in _retire(desired.name, c)]
    return None, [*cleanup, *old, Create(desired.name, spec), Start(desired.name, spec.name)]


def _restart_steps(
    desired: DesiredService, keep: Container, runtime: ServiceRuntime, now: float
) -> list[Step]:
    if keep.running:
        return []
    restart = desired.service.config.restart
    if not should_restart(restart, keep.exit_code, runtime.stopped_by_user):
        return []
    if runtime.exit_seen != keep.id or not runtime.crash.due(now):
        return []
    return [Start(desired.name, keep.id, restart=True)]
