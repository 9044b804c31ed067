"""The daily summary (pure): per service, errors by type, restarts, time in error, worst alert.

A `Ledger` is what the agent keeps between passes and across restarts (in the state dir). Each
pass's statuses and alerts are folded into it: a retry count or restart count that grew since the
last look adds that many errors or restarts, a service in error accumulates the seconds between
looks, and an active alert marks its severity. Counts live in buckets of 1/288 of the window
(5 minutes of a day), so the ledger stays bounded however busy a service is; the summary adds up
the buckets of the last window. A look that adds nothing keeps no bucket, so a healthy service
costs one `Track` however long it runs; and at most `MAX_REMOVED` services that left the target
are remembered (the longest gone are forgotten first), so a target that keeps renaming its
services cannot grow the ledger either. All functions take `now`; nothing here does I/O.
"""

from __future__ import annotations

import math

import msgspec
from msgspec.structs import replace

from fleet_agent.model import Alert, ServiceStatus, iso

BUCKETS = 288
MAX_REMOVED = 100  # services that left the target, kept until their counts leave the window
RANK = {None: 0, "warning": 1, "critical": 2}
REMOVED = "removed"  # a service that left the target within the window
PULL_ERRORS = frozenset({"ImagePullBackOff", "ErrImagePull"})  # one retry count between them


class Bucket(msgspec.Struct, frozen=True, omit_defaults=True):
    errors: dict[str, int] = {}
    restarts: int = 0
    seconds: float = 0.0
    worst: str | None = None


EMPTY = Bucket()


class Track(msgspec.Struct, frozen=True, omit_defaults=True):
    """One service: what the last look saw, and its buckets."""

    status: str = "pending"
    error_type: str | None = None
    retry_count: int = 0
    error_at: str | None = None  # the timestamp of the last failure seen
    restart_count: int = 0
    in_error: bool = False
    seen_at: float | None = None  # the last look in this run of the agent
    buckets: dict[int, Bucket] = {}


class Ledger(msgspec.Struct, frozen=True):
    bucket_seconds: float = 86400.0 / BUCKETS
    services: dict[str, Track] = {}


class ServiceSummary(msgspec.Struct, frozen=True, rename="camel"):
    status: str
    errors: dict[str, int]
    restarts: int
    seconds_in_error: int
    worst_severity: str | None


class Summary(msgspec.Struct, frozen=True, rename="camel"):
    device_id: str
    from_: str = msgspec.field(name="from")
    to: str = ""
    services: dict[str, ServiceSummary] = {}


def new_ledger(window: float) -> Ledger:
    return Ledger(bucket_seconds=window / BUCKETS)


def restarted(ledger: Ledger, window: float) -> Ledger:
    """A ledger read back at start-up: the agent's downtime is not time in error. A ledger
    kept for another window length no longer fits its buckets: it starts over."""
    if not math.isclose(ledger.bucket_seconds, window / BUCKETS):
        return new_ledger(window)
    services = {n: replace(t, seen_at=None) for n, t in ledger.services.items()}
    return replace(ledger, services=services)


def _grown(new: int, old: int) -> int:
    """How many happened since the last look; a count that went down started over."""
    return new - old if new >= old else new


def _new_errors(track: Track, status: ServiceStatus) -> tuple[str | None, int]:
    """Failures since the last look: the retry count's growth, or, when a failure newer than
    the last one seen shows a count no higher (the count started over), that count."""
    error = status.error
    if error is None:
        return None, 0
    same = error.type == track.error_type or {error.type, track.error_type} <= PULL_ERRORS
    last = track.retry_count if same else 0
    if error.retry_count > last:
        return error.type, error.retry_count - last
    return error.type, error.retry_count if error.timestamp != track.error_at else 0


def _add(bucket: Bucket, kind: str | None, errors: int, restarts: int, seconds: float) -> Bucket:
    counts = dict(bucket.errors)
    if kind is not None and errors:
        counts[kind] = counts.get(kind, 0) + errors
    return replace(
        bucket, errors=counts, restarts=bucket.restarts + restarts, seconds=bucket.seconds + seconds
    )


def _quiet(track: Track, status: ServiceStatus, alert: Alert | None, slot: int) -> bool:
    """Nothing to count since the last look: no error then or now, no alert, no restart, the
    same state, and this slot's bucket exists (`_look` would only move `seen_at`)."""
    return (
        status.error is None
        and not track.in_error
        and alert is None
        and status.restart_count == track.restart_count
        and status.service_status == track.status
        and slot in track.buckets
    )


def _look(track: Track, status: ServiceStatus, alert: Alert | None, slot: int, now: float) -> Track:
    if _quiet(track, status, alert, slot):  # most services, most passes: the same result
        return replace(track, seen_at=now)
    return _counted(track, status, alert, slot, now)


def _counted(
    track: Track, status: ServiceStatus, alert: Alert | None, slot: int, now: float
) -> Track:
    kind, errors = _new_errors(track, status)
    restarts = _grown(status.restart_count, track.restart_count)
    seconds = now - track.seen_at if track.in_error and track.seen_at is not None else 0.0
    bucket = _add(track.buckets.get(slot, Bucket()), kind, errors, restarts, max(seconds, 0.0))
    if alert is not None and RANK.get(alert.severity, 0) > RANK.get(bucket.worst, 0):
        bucket = replace(bucket, worst=alert.severity)
    buckets = track.buckets if bucket == EMPTY else {**track.buckets, slot: bucket}
    # Without an error (a crash-looping container runs for a moment between crashes) the last
    # error's count is kept: the next crash continues it.
    return Track(
        status=status.service_status,
        error_type=kind or track.error_type,
        retry_count=status.error.retry_count if status.error else track.retry_count,
        error_at=status.error.timestamp if status.error else track.error_at,
        restart_count=status.restart_count,
        in_error=status.error is not None,
        seen_at=now,
        buckets=buckets,
    )


def _left(track: Track, slot: int, now: float) -> Track:
    """A service no longer in the target: its time in error ends now. Its bucket is kept even
    when empty: it keeps the service in the summary, as removed, for a window."""
    if track.status == REMOVED:
        return track
    seconds = now - track.seen_at if track.in_error and track.seen_at is not None else 0.0
    bucket = _add(track.buckets.get(slot, Bucket()), None, 0, 0, max(seconds, 0.0))
    return Track(status=REMOVED, buckets={**track.buckets, slot: bucket})


def observe(
    ledger: Ledger, statuses: list[ServiceStatus], alerts: dict[str, Alert], now: float
) -> Ledger:
    """The ledger after one pass's statuses and active alerts (keyed by service)."""
    slot = int(now // ledger.bucket_seconds)
    oldest = slot - BUCKETS  # one bucket more than the window: the window's edge falls in it
    services: dict[str, Track] = {}
    for status in statuses:
        name = status.service_name
        track = ledger.services.get(name, Track())
        services[name] = _look(track, status, alerts.get(name), slot, now)
    for name, track in ledger.services.items():
        if name not in services:
            services[name] = _left(track, slot, now)
    kept: dict[str, Track] = {}
    for name, track in services.items():
        buckets = {k: b for k, b in track.buckets.items() if k >= oldest}
        if buckets or track.status != REMOVED:
            kept[name] = replace(track, buckets=buckets)
    return replace(ledger, services=_fewer_removed(kept))


def _fewer_removed(services: dict[str, Track]) -> dict[str, Track]:
    """At most MAX_REMOVED services that left; those gone longest (oldest last bucket) go."""
    removed = [n for n, t in services.items() if t.status == REMOVED]
    if len(removed) <= MAX_REMOVED:
        return services
    removed.sort(key=lambda n: (max(services[n].buckets, default=0), n))
    dropped = set(removed[: len(removed) - MAX_REMOVED])
    return {n: t for n, t in services.items() if n not in dropped}


def counts_key(ledger: Ledger) -> bytes:
    """The ledger without seconds and look times: a change here is worth writing at once."""
    slim = {
        name: (t.status, t.error_type, t.retry_count, t.error_at, t.restart_count, t.in_error,
               {k: (b.errors, b.restarts, b.worst) for k, b in t.buckets.items()})
        for name, t in ledger.services.items()
    }  # fmt: skip
    return msgspec.json.encode(slim)


def summarize(ledger: Ledger, device_id: str, now: float, window: float) -> Summary:
    """The last `window` seconds up to `now`, per service."""
    first = int((now - window) // ledger.bucket_seconds)
    services: dict[str, ServiceSummary] = {}
    for name, track in sorted(ledger.services.items()):
        errors: dict[str, int] = {}
        restarts, seconds, worst = 0, 0.0, None
        for slot, bucket in track.buckets.items():
            if slot < first:
                continue
            for kind, count in bucket.errors.items():
                errors[kind] = errors.get(kind, 0) + count
            restarts += bucket.restarts
            seconds += bucket.seconds
            worst = bucket.worst if RANK.get(bucket.worst, 0) > RANK.get(worst, 0) else worst
        if track.in_error and track.seen_at is not None:
            seconds += max(now - track.seen_at, 0.0)  # still in error: up to now
        services[name] = ServiceSummary(track.status, errors, restarts, round(seconds), worst)
    return Summary(device_id, iso(now - window), iso(now), services)
