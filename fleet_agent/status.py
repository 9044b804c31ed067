"""Status derivation (pure): what each service is doing and why, in the contract's words.

Given a service's target, the containers seen for it, its failure history and `now`, say its
`serviceStatus` and `error` exactly as the contract defines them, and sum the device up.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from fleet_agent import __version__
from fleet_agent.backoff import Backoff, BackoffPolicy, Failure, to_wall
from fleet_agent.model import (
    DesiredService,
    DeviceState,
    ErrorType,
    Event,
    Progress,
    ServiceError,
    ServiceState,
    ServiceStatus,
    iso,
)
from fleet_agent.planner import by_service, current_container
from fleet_agent.report import Report
from fleet_agent.runtime import Container, ServiceRuntime, should_restart


class StatusContext(msgspec.Struct, frozen=True):
    """What every service's status shares in one pass."""

    device_id: str
    target_version: int | None
    policy: BackoffPolicy
    now: float  # wall time: the published stamps
    mono: float | None = None  # the same moment on the monotonic clock (None: same as `now`)

    def wall_of(self, at: float, last: Failure | None) -> str:
        """A monotonic deadline or failure time as the contract's timestamp."""
        mono = self.now if self.mono is None else self.mono
        return iso(to_wall(at, last, mono, self.now))


def _error(backoff: Backoff, ctx: StatusContext) -> ServiceError | None:
    last = backoff.last
    if last is None:
        return None
    kind: ErrorType = last.type
    if kind == "ImagePullBackOff" and backoff.exhausted:
        kind = "ErrImagePull"
    return ServiceError(
        type=kind,
        message=last.message,
        timestamp=ctx.wall_of(last.at, last),
        retry_count=backoff.failures,
        max_retries=ctx.policy.max_retries,
        next_retry=None if backoff.next_retry is None else ctx.wall_of(backoff.next_retry, last),
        exhausted=backoff.exhausted,
    )


def _state(
    desired: DesiredService, keep: Container | None, runtime: ServiceRuntime, pulling: bool
) -> tuple[ServiceState, bool]:
    """The service's state, and whether its crash history is the error to show."""
    if pulling:
        return "downloading", False
    if keep is not None and keep.running:
        return "running", False
    if runtime.deploy.last is not None:
        return "error", False
    if keep is None:
        return "pending", False
    restart = desired.service.config.restart
    if should_restart(restart, keep.exit_code, runtime.stopped_by_user):
        return ("error", True) if runtime.crash.last is not None else ("starting", False)
    return ("stopped" if runtime.stopped_by_user else "exited"), False


def service_status(
    ctx: StatusContext,
    desired: DesiredService,
    mine: list[Container],
    runtime: ServiceRuntime,
    pulling: bool,
    doing: ServiceState | None = None,
) -> ServiceStatus:
    """`doing`: what the service's steps under way do (`stopping`, `starting`), if any."""
    keep = current_container(desired, mine)
    shown = keep or next((c for c in mine if c.running), None)
    state, crash = _state(desired, keep, runtime, pulling)
    healthy = keep is not None and keep.running
    # a start under way whose container already runs has started: it is running
    if doing is not None and not pulling and (doing == "stopping" or not healthy):
        state = doing
    # the contract: `error` is null whenever the service is healthy at its target
    error = None if healthy else _error(runtime.crash if crash else runtime.deploy, ctx)
    service = desired.service
    return ServiceStatus(
        device_id=ctx.device_id,
        app_id=desired.app_id,
        app_name=desired.app_name,
        service_id=service.service_id,
        service_name=service.service_name,
        image_name=service.image_name,
        service_status=state,
        container_id=shown.id if shown else None,
        running_image=shown.image if shown and shown.running else None,
        restart_count=runtime.restart_count,
        error=error,
        target_version=ctx.target_version,
        updated_at=iso(ctx.now),
        exit_code=keep.exit_code if keep is not None and not keep.running else None,
    )


def with_progress(status: ServiceStatus, progress: Progress | None) -> ServiceStatus:
    """`progress` belongs to a status only while it is `downloading` (contract v1.1)."""
    if progress is None or status.service_status != "downloading":
        return status
    return msgspec.structs.replace(status, progress=progress)


def device_state(ctx: StatusContext, statuses: list[ServiceStatus], leftovers: int) -> DeviceState:
    counts = Counter(status.service_status for status in statuses)
    converged = leftovers == 0 and all(
        s.service_status == "running" and s.error is None for s in statuses
    )
    return DeviceState(
        device_id=ctx.device_id,
        agent_version=__version__,
        target_version=ctx.target_version,
        converged=converged,
        counts=dict(sorted(counts.items())),
        updated_at=iso(ctx.now),
    )


def build_report(
    ctx: StatusContext,
    desired: list[DesiredService],
    containers: list[Container],
    runtimes: dict[str, ServiceRuntime],
    pulling: set[tuple[str, str]],
    events: list[Event],
    busy: dict[str, ServiceState] | None = None,
    progress: dict[tuple[str, str], Progress] | None = None,
) -> Report:
    """Every service's status and the device summary for one pass; `busy`: the services
    whose steps are under way, and what they do; `progress`: what each pull under way shows,
    by (service, config hash)."""
    doing = busy or {}
    grouped = by_service(containers)
    shown = progress or {}
    statuses = [
        with_progress(
            service_status(
                ctx,
                s,
                grouped.get(s.name, []),
                runtimes[s.name],
                (s.name, s.config_hash) in pulling,
                doing.get(s.name),
            ),
            shown.get((s.name, s.config_hash)),
        )
        for s in desired
    ]
    wanted = {s.name for s in desired}
    leftovers = sum(1 for c in containers if c.service not in wanted) + sum(
        max(0, len(grouped.get(s.name, [])) - 1) for s in desired
    )
    settling = sorted(s.name for s in desired if runtimes[s.name].crash.failures)
    return Report(device_state(ctx, statuses, leftovers), statuses, events, None, settling)
