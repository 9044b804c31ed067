"""The publisher interface every transport implements, and the local one (status.json).

The reconciler hands one `Report` per pass and one `Ack` per received target to each publisher;
what a transport does with them (files, retained MQTT topics) is its own business, so adding a
transport never touches the core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import msgspec

from fleet_agent.model import Ack, DeviceState, ServiceStatus
from fleet_agent.report import Report, content_key
from fleet_agent.store import write_atomic

__all__ = ["FilePublisher", "Publisher", "Report", "content_key"]
STATUS_FILE = "status.json"
ACK_FILE = "target-ack.json"
ALERTS_FILE = "alerts.json"


class Publisher(Protocol):
    def publish(self, report: Report) -> None: ...

    def ack(self, ack: Ack) -> None: ...


class LocalStatus(msgspec.Struct, frozen=True, rename="camel"):
    state: DeviceState
    services: dict[str, ServiceStatus]
    engine_error: str | None


class FilePublisher:
    """Local mode: the latest status, active alerts and ack as files in the state dir, written
    atomically and only when their content changed (devices run on flash). Not synced to disk:
    they say what a pass saw and the next pass writes them again, and a sync here would make
    the engine's own writes (a create, a start) wait behind ours."""

    def __init__(self, state_dir: Path) -> None:
        self.status_path = state_dir / STATUS_FILE
        self.ack_path = state_dir / ACK_FILE
        self.alerts_path = state_dir / ALERTS_FILE
        self._last_key: bytes | None = None
        self._last_alerts: bytes | None = None

    def publish(self, report: Report) -> None:
        """Write only when the content changed (timestamps alone are not a change)."""
        alerts = msgspec.json.format(msgspec.json.encode(report.alerts))
        if alerts != self._last_alerts:
            write_atomic(self.alerts_path, alerts, durable=False)
            self._last_alerts = alerts
        key = content_key(report)
        if key == self._last_key:
            return
        services = {status.service_name: status for status in report.services}
        document = LocalStatus(report.state, services, report.engine_error)
        payload = msgspec.json.format(msgspec.json.encode(document))
        write_atomic(self.status_path, payload, durable=False)
        self._last_key = key

    def ack(self, ack: Ack) -> None:
        write_atomic(self.ack_path, msgspec.json.format(msgspec.json.encode(ack)), durable=False)
