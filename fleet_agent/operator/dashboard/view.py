"""What the page shows, derived from the client's `Device`s (pure: no I/O, `now` passed in).

The browser gets small, ready-to-draw documents: one per device (a row of the overview with its
service badges and active alerts) and one per service for the drawer. The words and colours of
the badges are decided here, Kubernetes-style, so the page only escapes and draws, and the unit
tests can check every badge without a browser. Long messages are cut in the row documents (the
drawer has them whole), which keeps a 1,000-device snapshot small.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from fleet_agent.model import Alert, ServiceStatus, iso
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.wire import AGENT

Tone = Literal["ok", "progress", "warn", "error", "muted"]
ROW_MESSAGE_CHARS = 240
OUTPUT_MARKER = "; last output: "
SEVERITY_ORDER = {"critical": 0, "warning": 1}
# the overview sorts by rank: problems first
RANK_ERROR, RANK_OFFLINE, RANK_BUSY, RANK_HEALTHY = 0, 1, 2, 3

_PLAIN: dict[str, tuple[str, Tone]] = {
    "running": ("Running", "ok"),
    "pending": ("Pending", "progress"),
    "starting": ("ContainerCreating", "progress"),
    "stopping": ("Terminating", "progress"),
    "stopped": ("Stopped", "muted"),
}


def badge(status: ServiceStatus) -> dict[str, Any]:
    """The badge of one service: `{"text", "tone", "percent"}` (percent only while pulling)."""
    percent = None
    text: str
    tone: Tone
    if status.error is not None:
        text, tone = status.error.type, "error"
        if status.error.type in ("ImagePullBackOff", "CrashLoopBackOff") and not (
            status.error.exhausted
        ):
            tone = "warn"
    elif status.service_status == "downloading":
        percent = status.progress.percent if status.progress is not None else None
        text = "Downloading" if percent is None else f"Downloading {percent} %"
        tone = "progress"
    elif status.service_status == "exited":
        code = status.exit_code
        text = "Exited" if code is None else f"Exited ({code})"
        tone = "muted" if code == 0 else "error"
    else:
        text, tone = _PLAIN.get(status.service_status, (status.service_status, "muted"))
    return {"text": text, "tone": tone, "percent": percent}


def _cut(text: str, limit: int = ROW_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def service_row(status: ServiceStatus, alert: Alert | None) -> dict[str, Any]:
    error = status.error
    retry = None
    if error is not None:
        retry = {
            "count": error.retry_count,
            "max": error.max_retries,
            "next": error.next_retry,
            "exhausted": error.exhausted,
        }
    return {
        "name": status.service_name,
        "app": status.app_name,
        "image": status.image_name,
        "status": status.service_status,
        "badge": badge(status),
        "message": _cut(error.message) if error else None,
        "retry": retry,
        "exitCode": status.exit_code,
        "restartCount": status.restart_count,
        "alert": alert.severity if alert else None,
    }


def alert_doc(alert: Alert) -> dict[str, Any]:
    return {
        "service": alert.service,
        "severity": alert.severity,
        "type": alert.type,
        "message": _cut(alert.message),
        "raisedAt": alert.raised_at,
    }


def availability(device: Device) -> tuple[str | None, str | None]:
    """Since when the device is as it is, and on what that rests.

    A change seen live is exact (`observed`). For a retained value the broker says nothing of
    its age: an online device is online since its agent started (`info.startedAt`), an offline
    one went quiet after its last report (`lastReport`)."""
    if device.availability_since is not None:
        return iso(device.availability_since), "observed"
    if device.availability == "online" and device.info and device.info.started_at:
        return device.info.started_at, "agentStart"
    if device.availability == "offline" and (last := device.last_report()) is not None:
        return iso(last), "lastReport"
    return None, None


def rank(device: Device) -> int:
    if device.in_error:
        return RANK_ERROR
    if not device.online:
        return RANK_OFFLINE
    if device.state is None or not device.state.converged:
        return RANK_BUSY
    return RANK_HEALTHY


def _counts(device: Device) -> dict[str, int]:
    if device.state is not None:
        return dict(device.state.counts)
    counts: dict[str, int] = {}
    for status in device.services.values():
        key = "error" if status.error else status.service_status
        counts[key] = counts.get(key, 0) + 1
    return counts


def device_row(device: Device) -> dict[str, Any]:
    """One device of the overview, with its services and active alerts."""
    since, basis = availability(device)
    state = device.state
    alerts = sorted(device.alerts.values(), key=lambda a: SEVERITY_ORDER.get(a.severity, 2))
    services = [
        service_row(device.services[name], device.alerts.get(name))
        for name in sorted(device.services)
    ]
    ack = device.ack
    return {
        "id": device.device_id,
        "availability": device.availability,
        "since": since,
        "sinceBasis": basis,
        "converged": state.converged if state else None,
        "targetVersion": state.target_version if state else None,
        "agentVersion": state.agent_version if state else None,
        "labels": dict(device.info.labels) if device.info else {},
        "counts": _counts(device),
        "rank": rank(device),
        "services": services,
        "alerts": [alert_doc(a) for a in alerts],
        "rejected": None if ack is None or ack.accepted else {"code": ack.code},
        "problems": sorted(device.problems),
    }


def split_output(message: str) -> tuple[str, list[str]]:
    """A crash message and the container's last output lines the agent appended to it."""
    head, marker, tail = message.partition(OUTPUT_MARKER)
    if not marker:
        return message, []
    return head, [line for line in tail.split(" | ") if line]


def service_detail(device: Device, name: str) -> dict[str, Any] | None:
    """Everything the drawer shows of one service, or None when the device has no such one."""
    status = device.services.get(name)
    if status is None:
        return None
    alert = device.alerts.get(name)
    error = msgspec.to_builtins(status.error) if status.error else None
    output: list[str] = []
    if error is not None:
        error["message"], output = split_output(status.error.message if status.error else "")
    history = [msgspec.to_builtins(entry) for entry in device.history.get(name, [])]
    return {
        "device": device.device_id,
        "row": service_row(status, alert),
        "status": msgspec.to_builtins(status),
        "error": error,
        "output": output,
        "alert": msgspec.to_builtins(alert) if alert else None,
        "history": list(reversed(history)),  # newest first
        "deviceAlert": msgspec.to_builtins(device.alerts[AGENT])
        if AGENT in device.alerts
        else None,
    }
