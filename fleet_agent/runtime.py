"""What the agent knows between passes: observed containers and each service's failure history.

`Container` is the engine's view translated into our own type (the Docker adapter builds it from
one list call). `ServiceRuntime` holds, per service and config, the deploy backoff (pulls, create,
start), the crash backoff (a container that keeps exiting), and the restart count. The functions
here are the pure transitions between passes; they take `now` and never touch the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec
from msgspec.structs import replace

from fleet_agent.backoff import Backoff, BackoffPolicy, Failure, forgive_since, record_failure
from fleet_agent.model import DesiredService, RestartPolicy


class Container(msgspec.Struct, frozen=True):
    id: str
    name: str
    service: str | None
    config_hash: str | None
    image: str
    state: str
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting", "paused")


class ExitDetails(msgspec.Struct, frozen=True):
    """Why a container stopped, read once per exit (inspect and log tail)."""

    exit_code: int
    oom_killed: bool = False
    log_tail: str = ""
    ran_for: float | None = None  # seconds, by the engine's own start and finish times


class ServiceRuntime(msgspec.Struct, frozen=True):
    config_hash: str
    deploy: Backoff = Backoff()
    crash: Backoff = Backoff()
    image_ready: bool = False
    restart_count: int = 0
    started_at: float | None = None
    exit_seen: str | None = None
    stopped_by_user: bool = False


def runtime_for(desired: DesiredService, current: ServiceRuntime | None) -> ServiceRuntime:
    """Keep the history at the same config; a config change starts from a clean slate."""
    if current is not None and current.config_hash == desired.config_hash:
        return current
    return ServiceRuntime(config_hash=desired.config_hash)


def should_restart(policy: RestartPolicy, exit_code: int | None, stopped_by_user: bool) -> bool:
    if policy == "always":
        return True
    if policy == "unless-stopped":
        return not stopped_by_user
    if policy == "on-failure":  # a stop by hand is no failure (as Docker's own policy)
        return exit_code not in (0, None) and not stopped_by_user
    return False


def exit_message(details: ExitDetails) -> str:
    reason = "OOMKilled" if details.oom_killed else "Error"
    message = f"{reason}: container exited with code {details.exit_code}"
    return f"{message}; last output: {details.log_tail}" if details.log_tail else message


def record_exit(
    runtime: ServiceRuntime,
    container: Container,
    details: ExitDetails,
    restart: RestartPolicy,
    policy: BackoffPolicy,
    now: float,
    counts: bool = True,
    wall: float | None = None,
) -> ServiceRuntime:
    """Note a newly seen exit. It feeds the crash backoff only when a restart will follow and
    the exit is the container's own doing (`counts`): an exit the agent did not witness (the
    engine or the device restarted) or a stop by hand under `always` is restarted at once."""
    runtime = replace(runtime, exit_seen=container.id, started_at=None)
    if not counts or not should_restart(restart, details.exit_code, runtime.stopped_by_user):
        return runtime
    failure = Failure("CrashLoopBackOff", exit_message(details), now, wall=wall)
    return replace(runtime, crash=record_failure(runtime.crash, policy, failure))


def with_exits(containers: list[Container], died: dict[str, int]) -> list[Container]:
    """The engine's list as its events tell it: a container that died (with that exit code,
    by its `die` event) is exited, though dockerd lists it running for some ms more."""
    return [
        replace(c, state="exited", exit_code=died[c.id]) if c.running and c.id in died else c
        for c in containers
    ]


def ran_between(started_at: object, finished_at: object) -> float | None:
    """Seconds between the engine's own `StartedAt` and `FinishedAt` (RFC 3339); None when
    either is unset ("0001-01-01T00:00:00Z") or unreadable: the agent's own times decide then."""
    try:
        started = datetime.fromisoformat(str(started_at))
        finished = datetime.fromisoformat(str(finished_at))
    except ValueError:
        return None
    if started.year < 2 or finished < started:
        return None
    return (finished - started).total_seconds()


def settle_crash(
    runtime: ServiceRuntime, now: float, reset_after: float, ran_for: float | None = None
) -> ServiceRuntime:
    """After `reset_after` seconds of running, the crash backoff is forgotten (as the kubelet).
    At an exit, how long the container ran by the engine's own clock (`ran_for`) decides: the
    passes that saw it start and end can each come late on a busy device."""
    if ran_for is not None:
        healthy = ran_for >= reset_after
    else:
        healthy = runtime.started_at is not None and now - runtime.started_at >= reset_after
    if healthy and runtime.crash.failures:
        return replace(runtime, crash=Backoff())
    return runtime


def retry_now(runtime: ServiceRuntime) -> ServiceRuntime:
    """An explicit retry request: both backoffs reset, the image is checked again."""
    return replace(runtime, deploy=Backoff(), crash=Backoff(), image_ready=False)


def forgive(runtime: ServiceRuntime, since: float, now: float) -> ServiceRuntime:
    """Failures from `since` on were an engine going away, not the service: not counted.
    Failures before it stay counted (a crash loop keeps heading for its limit)."""
    return replace(
        runtime,
        deploy=forgive_since(runtime.deploy, since, now),
        crash=forgive_since(runtime.crash, since, now),
    )


def next_retry_after(runtimes: Iterable[ServiceRuntime], after: float) -> float | None:
    """The earliest retry deadline later than `after` (the scheduler's next wake-up)."""
    deadlines = [
        at
        for runtime in runtimes
        for at in (runtime.deploy.next_retry, runtime.crash.next_retry)
        if at is not None and at > after
    ]
    return min(deadlines, default=None)
