"""Alert transitions as data: which alerts were raised, escalated or cleared by a pass (pure).

Sinks that report changes rather than states (webhooks, the daily summary) need the moments an
alert changes, not only the alert topics' contents. `feed.py` decides the alerts; this module only
compares two sets of them, so every sink sees the same transitions the MQTT topics show.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec.structs import replace

from fleet_agent.feed import Alert
from fleet_agent.model import iso

AlertEvent = Literal["raised", "escalated", "cleared"]
SEVERITY_RANK = {"warning": 1, "critical": 2}


class AlertChange(msgspec.Struct, frozen=True):
    event: AlertEvent
    alert: Alert  # the new alert; for `cleared` the last one, stamped with the clearing time


def alert_changes(
    before: dict[str, Alert], after: dict[str, Alert], now: float
) -> list[AlertChange]:
    """`escalated`: the severity went up; any other new or replaced alert is `raised`."""
    changes: list[AlertChange] = []
    for key, alert in after.items():
        old = before.get(key)
        if old == alert:
            continue
        rising = old is not None and SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(
            old.severity, 0
        )
        changes.append(AlertChange("escalated" if rising else "raised", alert))
    for key, old in before.items():
        if key not in after:
            changes.append(AlertChange("cleared", replace(old, updated_at=iso(now))))
    return changes


def webhook_body(change: AlertChange) -> bytes:
    """The alert payload plus `event` (it already holds `deviceId`), as the contract says."""
    fields = msgspec.to_builtins(change.alert)
    return msgspec.json.encode({"event": change.event, **fields})
