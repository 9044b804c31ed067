"""The `Report` of one pass: what every publisher is handed, decided entirely by the core.

Statuses and the device summary come from `status.py`; alerts, their transitions, history and
state-change events are added by `feed.py`. Publishers (files, MQTT, webhooks) only send it.
"""

from __future__ import annotations

import msgspec
from msgspec.structs import replace

from fleet_agent.model import Alert, AlertChange, DeviceState, Event, HistoryEntry, ServiceStatus


class Report(msgspec.Struct, frozen=True, rename="camel"):
    state: DeviceState
    services: list[ServiceStatus]
    events: list[Event] = []
    engine_error: str | None = None
    # services whose crash backoff has not been reset by healthy running yet
    crash_settling: list[str] = []
    # decided by the core (feed.py) from the statuses, the same for every publisher:
    alerts: dict[str, Alert] = {}  # the active alerts by service, `_agent` for the device
    alert_changes: list[AlertChange] = []  # this pass's alert transitions
    history: dict[str, list[HistoryEntry]] = {}  # each service's last transitions
    # steps are under way: the pass their end kicks follows at once (a transport may wait for
    # it, so a quick replacement shows as one retained message, not one per step)
    provisional: bool = False


def content_key(report: Report) -> bytes:
    """The report without its `updatedAt` stamps and events: what makes a real change."""
    services = [replace(status, updated_at="") for status in report.services]
    return msgspec.json.encode(
        [replace(report.state, updated_at=""), services, report.engine_error]
    )
