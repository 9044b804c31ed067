"""How step and pull results change a service's history (pure), and the events they make.

The reconciler runs steps through the engine and hands what happened here: a failure feeds the
right backoff in our own words, a success resets it, and an unreachable engine costs no service
any of its retry budget (the engine, not the service, is at fault).
"""

from __future__ import annotations

import msgspec
from msgspec.structs import replace

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure, record_failure, to_wall
from fleet_agent.model import Event, iso
from fleet_agent.planner import Create, Start, Step, subject
from fleet_agent.runtime import ServiceRuntime

CANCELLED = "cancelled"  # a pull the agent cancelled: no attempt of the service, not counted
# a create that found its image gone from the device (pruned while the agent took it as
# present): no attempt of the service either; the image is pulled again at once, not counted
IMAGE_GONE = "image_gone"


class StepResult(msgspec.Struct, frozen=True):
    step: Step
    error_kind: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error_kind is None


class PullResult(msgspec.Struct, frozen=True):
    service: str
    image: str
    config_hash: str
    error_kind: str | None = None
    message: str = ""


def apply_pull(
    runtime: ServiceRuntime,
    result: PullResult,
    policy: BackoffPolicy,
    now: float,
    wall: float | None = None,
) -> ServiceRuntime:
    if result.config_hash != runtime.config_hash or result.error_kind in ("unavailable", CANCELLED):
        return runtime
    if result.error_kind is None:
        return replace(runtime, image_ready=True)
    invalid = result.error_kind == "invalid_reference"
    failure = Failure(
        "InvalidImageName" if invalid else "ImagePullBackOff",
        result.message,
        now,
        retryable=not invalid,
        wall=wall,
    )
    return replace(
        runtime, deploy=record_failure(runtime.deploy, policy, failure), image_ready=False
    )


def apply_step(
    runtime: ServiceRuntime,
    result: StepResult,
    policy: BackoffPolicy,
    now: float,
    wall: float | None = None,
) -> ServiceRuntime:
    """`now` monotonic (deadlines), `wall` for the failure's published timestamp."""
    step = result.step
    if result.ok:
        return _succeeded(runtime, step, now)
    if result.error_kind == IMAGE_GONE:
        return replace(runtime, image_ready=False)
    if result.error_kind == "unavailable" or not isinstance(step, Create | Start):
        return runtime
    if isinstance(step, Start) and step.restart:
        failure = Failure("CrashLoopBackOff", f"restart failed: {result.message}", now, wall=wall)
        return replace(runtime, crash=record_failure(runtime.crash, policy, failure))
    failure = Failure("StartFailure", result.message, now, wall=wall)
    return replace(runtime, deploy=record_failure(runtime.deploy, policy, failure))


def _succeeded(runtime: ServiceRuntime, step: Step, now: float) -> ServiceRuntime:
    if isinstance(step, Start) and step.restart:
        return replace(
            runtime, restart_count=runtime.restart_count + 1, started_at=now, exit_seen=None
        )
    if isinstance(step, Start):
        return replace(runtime, deploy=Backoff(), started_at=now, exit_seen=None)
    return runtime


def step_action(step: Step) -> str:
    if isinstance(step, Start) and step.restart:
        return "restart"
    return type(step).__name__.lower()


def step_event(device_id: str, result: StepResult, now: float) -> Event:
    action = step_action(result.step)
    return Event(
        device_id=device_id,
        type=action,
        timestamp=iso(now),
        service=result.step.service,
        ok=result.ok,
        message=result.message or f"{action} {subject(result.step)}",
    )


def pull_event(
    device_id: str,
    result: PullResult,
    runtime: ServiceRuntime,
    now: float,
    wall: float | None = None,
) -> Event:
    """Each pull attempt; a failed one is an `ErrImagePull`, as the kubelet reports it."""
    failed = result.error_kind is not None
    backoff = runtime.deploy
    wall = now if wall is None else wall
    retry = backoff.next_retry
    return Event(
        device_id=device_id,
        type="pull",
        timestamp=iso(wall),
        service=result.service,
        ok=not failed,
        message=result.message or f"pulled {result.image}",
        error_type=(
            "InvalidImageName" if result.error_kind == "invalid_reference" else "ErrImagePull"
        )
        if failed
        else None,
        retry_count=backoff.failures if failed else None,
        next_retry=iso(to_wall(retry, backoff.last, now, wall)) if failed and retry else None,
    )
