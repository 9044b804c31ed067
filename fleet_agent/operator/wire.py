"""Every payload type an operator reads, in one place: the agent's wire types re-exported, and
the operator's own readers of the device info and the daily summary (contract v1.1).

The agent builds `info` as a plain document and declares the summary strictly (`summary.py`);
here both are decoded leniently (unknown keys ignored, most keys optional): a newer agent that
adds a field must never make an older operator tool fail.
"""

from __future__ import annotations

import msgspec

from fleet_agent.commands import CommandResult
from fleet_agent.feed import AGENT
from fleet_agent.model import (
    Ack,
    Alert,
    DeviceState,
    Event,
    HistoryEntry,
    Progress,
    ServiceStatus,
    Target,
)

__all__ = [
    "AGENT",
    "Ack",
    "Alert",
    "CommandResult",
    "DeviceInfo",
    "DeviceState",
    "EngineInfo",
    "Event",
    "HistoryEntry",
    "Progress",
    "ServiceStatus",
    "ServiceSummary",
    "Summary",
    "Target",
]


class EngineInfo(msgspec.Struct, frozen=True, rename="camel"):
    version: str | None = None
    os: str | None = None
    arch: str | None = None


class DeviceInfo(msgspec.Struct, frozen=True, rename="camel"):
    """`{p}/{d}/info`: what the device is (agent version, labels, engine)."""

    device_id: str = ""
    agent_version: str | None = None
    labels: dict[str, str] = {}
    engine: EngineInfo | None = None
    started_at: str | None = None


class ServiceSummary(msgspec.Struct, frozen=True, rename="camel"):
    status: str | None = None
    errors: dict[str, int] = {}
    restarts: int = 0
    seconds_in_error: float = 0
    worst_severity: str | None = None


class Summary(msgspec.Struct, frozen=True, rename="camel"):
    """`{p}/{d}/summary`: the last 24 h per service."""

    device_id: str = ""
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    services: dict[str, ServiceSummary] = {}
