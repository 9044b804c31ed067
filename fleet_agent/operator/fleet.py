"""The in-memory fleet model (pure): what every device last said on its retained topics.

`apply` folds one received MQTT message into a device and says what changed. Payloads are
decoded into the contract's own msgspec types; a payload that does not decode never raises: it
is kept as a `problem` of the device and the previous value stays. The client feeds this from
paho's thread-free dispatcher; dashboards, recorders and rollouts read the same `Device`s.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec
from msgspec.structs import replace

from fleet_agent.operator.topics import Kind, Topic
from fleet_agent.operator.wire import (
    AGENT,
    Ack,
    Alert,
    CommandResult,
    DeviceInfo,
    DeviceState,
    Event,
    HistoryEntry,
    ServiceStatus,
    Summary,
    Target,
)
from fleet_agent.validate import decode_target

Availability = Literal["online", "offline"]


class Device(msgspec.Struct, frozen=True):
    """One device as its retained topics describe it. Immutable: every change makes a new one,
    so a snapshot handed out stays consistent while messages keep arriving."""

    device_id: str
    availability: Availability | None = None
    # when a live change of availability was seen (epoch seconds); None when only the retained
    # value is known (the broker does not say since when it holds)
    availability_since: float | None = None
    last_message_at: float | None = None  # when this client last received a live message
    state: DeviceState | None = None
    info: DeviceInfo | None = None
    ack: Ack | None = None
    target: Target | None = None  # the retained desired target, when it decodes
    target_payload: bytes | None = None  # the retained target as published (signed ones too)
    services: dict[str, ServiceStatus] = {}
    alerts: dict[str, Alert] = {}  # by service name; the device-level alert under `_agent`
    history: dict[str, list[HistoryEntry]] = {}
    summary: Summary | None = None
    problems: dict[str, str] = {}  # topic suffix -> why its payload was not understood

    @property
    def online(self) -> bool:
        return self.availability == "online"

    @property
    def agent_alert(self) -> Alert | None:
        return self.alerts.get(AGENT)

    @property
    def in_error(self) -> bool:
        """A service reports an error, or the device has a device-level alert."""
        return any(s.error is not None for s in self.services.values()) or AGENT in self.alerts

    @property
    def accepted_version(self) -> int | None:
        """The highest target version the device is known to have accepted."""
        versions = [self.state.target_version if self.state else None]
        if self.ack is not None and self.ack.accepted:
            versions.append(self.ack.version)
        known = [v for v in versions if v is not None]
        return max(known) if known else None

    def last_report(self) -> float | None:
        """The newest `updatedAt` the device published (state, statuses, alerts)."""
        stamps = [self.state.updated_at] if self.state else []
        stamps += [s.updated_at for s in self.services.values()]
        stamps += [a.updated_at for a in self.alerts.values()]
        times = [t for t in map(parse_time, stamps) if t is not None]
        return max(times, default=None)


class Change(msgspec.Struct, frozen=True):
    """What one message changed. `device` is the device after it (None for a reply that
    names no device); `live` is False for retained messages (a snapshot, a reconnect)."""

    device_id: str
    kind: Kind | Literal["problem"]
    live: bool
    service: str | None = None
    cleared: bool = False
    device: Device | None = None
    event: Event | None = None
    result: CommandResult | None = None
    problem: str | None = None


def parse_time(stamp: str | None) -> float | None:
    """Epoch seconds of a contract timestamp (`2025-10-24T10:15:00.000Z`), None if unreadable."""
    if not stamp:
        return None
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_TYPES: dict[str, Any] = {
    "state": DeviceState,
    "info": DeviceInfo,
    "summary": Summary,
    "ack": Ack,
    "services": ServiceStatus,
    "alerts": Alert,
    "history": list[HistoryEntry],
    "events": Event,
    "result": CommandResult,
}


def _decode(kind: str, payload: bytes) -> Any:
    if kind == "target":
        decoded = decode_target(payload)
        if isinstance(decoded, list):
            raise ValueError("; ".join(f"{e.path}: {e.message}" for e in decoded[:5]))
        return decoded
    return msgspec.json.decode(payload, type=_TYPES[kind])


def _suffix(topic: Topic) -> str:
    names = {"ack": "target/ack", "result": "cmd/result"}
    base = names.get(topic.kind, topic.kind)
    return f"{base}/{topic.service}" if topic.service else base


def apply(
    device: Device | None, topic: Topic, payload: bytes, retained: bool, now: float
) -> tuple[Device, Change]:
    """Fold one message on `topic` into `device` (None: first seen)."""
    before = device or Device(topic.device)
    live = not retained
    if live:
        before = replace(before, last_message_at=now)
    if topic.kind == "availability":
        after = _availability(before, payload, live, now)
        return after, Change(topic.device, "availability", live, device=after)
    cleared = not payload.strip()
    try:
        value = None if cleared else _decode(topic.kind, payload)
    except (msgspec.MsgspecError, ValueError) as exc:
        problems = {**before.problems, _suffix(topic): str(exc)}
        after = replace(before, problems=problems)
        if topic.kind == "target":  # signed (JWS) or foreign: kept as published
            after = replace(after, target=None, target_payload=payload)
        change = Change(topic.device, "problem", live, topic.service, device=after)
        return after, replace(change, problem=f"{_suffix(topic)}: {exc}")
    problems = {k: v for k, v in before.problems.items() if k != _suffix(topic)}
    after = _with(replace(before, problems=problems), topic, value)
    if topic.kind == "target":
        after = replace(after, target_payload=None if cleared else payload)
    change = Change(topic.device, topic.kind, live, topic.service, cleared, after)
    if topic.kind == "events":
        change = replace(change, event=value)
    elif topic.kind == "result":
        change = replace(change, result=value)
    return after, change


def _availability(device: Device, payload: bytes, live: bool, now: float) -> Device:
    text = payload.decode("utf-8", "replace").strip()
    value: Availability | None = text if text in ("online", "offline") else None  # type: ignore[assignment]
    if value == device.availability:
        return device
    return replace(device, availability=value, availability_since=now if live else None)


def _with(device: Device, topic: Topic, value: Any) -> Device:
    """The device with `value` (None: cleared) stored where `topic` says."""
    if topic.kind in ("services", "alerts", "history"):
        assert topic.service is not None
        current: dict[str, Any] = getattr(device, topic.kind)
        updated = {k: v for k, v in current.items() if k != topic.service}
        if value is not None:
            updated[topic.service] = value
        return replace(device, **{topic.kind: updated})
    if topic.kind in ("state", "info", "summary", "ack", "target"):
        return replace(device, **{topic.kind: value})
    return device  # events and command results are news, not state
