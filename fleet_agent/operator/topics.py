"""The contract's topic names, from the operator's side: what to subscribe to and what a
received topic is (device, kind, service). Pure; the client and its tests share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

from fleet_agent.validate import NAME_PATTERN

Kind = Literal[
    "availability",
    "state",
    "info",
    "summary",
    "target",
    "ack",
    "services",
    "alerts",
    "history",
    "events",
    "result",
]
# suffix (after `{p}/{d}/`) -> kind, for the topics without a service name
_FIXED: dict[str, Kind] = {
    "availability": "availability",
    "state": "state",
    "info": "info",
    "summary": "summary",
    "target": "target",
    "target/ack": "ack",
    "events": "events",
    "cmd/result": "result",
}
PER_SERVICE: tuple[Kind, ...] = ("services", "alerts", "history")
RETAINED: tuple[str, ...] = (
    "availability",
    "state",
    "info",
    "summary",
    "target",
    "target/ack",
    "services/+",
    "alerts/+",
    "history/+",
)


class Topic(NamedTuple):
    device: str
    kind: Kind
    service: str | None = None


def parse(prefix: str, topic: str) -> Topic | None:
    """What `topic` is, or None when it is not a device topic of the contract."""
    if not topic.startswith(prefix + "/"):
        return None
    device, _, suffix = topic[len(prefix) + 1 :].partition("/")
    if not NAME_PATTERN.fullmatch(device):
        return None  # `_rollouts`, `_operator`, ...: never a device
    if suffix in _FIXED:
        return Topic(device, _FIXED[suffix])
    kind, _, service = suffix.partition("/")
    if kind in PER_SERVICE and service and "/" not in service:
        return Topic(device, kind, service)
    return None


def subscriptions(
    prefix: str, devices: Iterable[str] | None = None, events: bool = False
) -> list[str]:
    """Topic filters for every retained topic (and `cmd/result`, and optionally `events`) of
    the given devices, or of every device when `devices` is None."""
    suffixes = [*RETAINED, "cmd/result", *(["events"] if events else [])]
    names = ["+"] if devices is None else sorted(set(devices))
    return [f"{prefix}/{name}/{suffix}" for name in names for suffix in suffixes]


def device_topic(prefix: str, device: str, suffix: str) -> str:
    return f"{prefix}/{device}/{suffix}"
