"""What the dashboard shows of a device: badges, retries, ranks, since-when, the drawer (pure)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fleet_agent.model import Alert, DeviceState, HistoryEntry, ServiceStatus, iso
from fleet_agent.operator.dashboard import view
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.wire import DeviceInfo
from tests.unit.factories import T0


def status(name: str = "web", state: str = "running", **extra: Any) -> ServiceStatus:
    doc: dict[str, Any] = {
        "deviceId": "dev-001", "appId": 1, "appName": "a", "serviceId": 1, "serviceName": name,
        "imageName": "reg/app:1", "serviceStatus": state, "containerId": None,
        "runningImage": None, "restartCount": 0, "error": None, "targetVersion": 3,
        "updatedAt": "2025-10-24T10:15:00.000Z",
    }  # fmt: skip
    return msgspec.convert(doc | extra, ServiceStatus)


def error(kind: str = "ImagePullBackOff", exhausted: bool = False, **extra: Any) -> dict[str, Any]:
    doc = {
        "type": kind, "message": "manifest unknown", "timestamp": "2025-10-24T10:15:00.000Z",
        "retryCount": 3, "maxRetries": 10, "exhausted": exhausted,
        "nextRetry": None if exhausted else "2025-10-24T10:16:20.000Z",
    }  # fmt: skip
    return doc | extra


def alert(service: str, severity: str = "warning") -> Alert:
    stamp = "2025-10-24T10:15:00.000Z"
    return Alert("dev-001", service, severity, "ImagePullBackOff", "manifest unknown", stamp, stamp)


def state(converged: bool = True) -> DeviceState:
    return DeviceState("dev-001", "0.2.0", 3, converged, {"running": 1}, "2025-10-24T10:15:00.000Z")


@pytest.mark.parametrize(
    ("service", "text", "tone"),
    [
        (status(), "Running", "ok"),
        (status(state="error", error=error()), "ImagePullBackOff", "warn"),
        (status(state="error", error=error("CrashLoopBackOff")), "CrashLoopBackOff", "warn"),
        (status(state="error", error=error("ErrImagePull", True)), "ErrImagePull", "error"),
        (status(state="error", error=error("InvalidImageName")), "InvalidImageName", "error"),
        (status(state="exited", exitCode=0), "Exited (0)", "muted"),
        (status(state="exited", exitCode=137), "Exited (137)", "error"),
        (status(state="pending"), "Pending", "progress"),
        (status(state="starting"), "ContainerCreating", "progress"),
        (status(state="stopped"), "Stopped", "muted"),
        (status(state="downloading"), "Downloading", "progress"),
    ],
)
def test_each_service_state_gets_the_kubernetes_word_and_colour(
    service: ServiceStatus, text: str, tone: str
) -> None:
    assert view.badge(service) == {"text": text, "tone": tone, "percent": None}


def test_a_download_shows_its_percentage_for_the_progress_bar() -> None:
    progress = {"percent": 42, "bytesDone": 42, "bytesTotal": 100}
    downloading = status(state="downloading", progress=progress)
    assert view.badge(downloading) == {
        "text": "Downloading 42 %",
        "tone": "progress",
        "percent": 42,
    }


def test_a_failing_service_row_carries_its_retries_and_next_retry_for_the_countdown() -> None:
    row = view.service_row(status(state="error", error=error()), alert("web"))
    assert row["retry"] == {
        "count": 3, "max": 10, "next": "2025-10-24T10:16:20.000Z", "exhausted": False,
    }  # fmt: skip
    assert row["alert"] == "warning" and row["message"] == "manifest unknown"
    exhausted = view.service_row(status(state="error", error=error(exhausted=True)), None)
    assert exhausted["retry"]["exhausted"] and exhausted["retry"]["next"] is None
    assert view.service_row(status(), None)["retry"] is None


def test_long_messages_are_cut_in_rows_and_whole_in_the_drawer() -> None:
    long = "x" * 5000
    failing = status(state="error", error=error(message=long))
    device = Device("dev-001", services={"web": failing})
    assert len(view.service_row(failing, None)["message"]) == view.ROW_MESSAGE_CHARS
    detail = view.service_detail(device, "web")
    assert detail is not None and detail["error"]["message"] == long


def test_devices_rank_errors_first_then_offline_then_busy_then_healthy() -> None:
    healthy = Device("a", availability="online", state=state(), services={"web": status()})
    busy = Device("b", availability="online", state=state(converged=False))
    offline = Device("c", availability="offline", state=state())
    failing = Device("d", availability="online", services={"web": status(error=error())})
    device_alert = Device(
        "e", availability="online", state=state(), alerts={"_agent": alert("_agent")}
    )
    ranks = [view.rank(d) for d in (failing, device_alert, offline, busy, healthy)]
    assert ranks == [0, 0, 1, 2, 3]


def test_availability_since_is_exact_when_seen_live_and_says_what_it_rests_on_otherwise() -> None:
    seen = Device("a", availability="offline", availability_since=T0)
    assert view.availability(seen) == (iso(T0), "observed")
    info = DeviceInfo(device_id="b", started_at="2025-10-24T09:00:00.000Z")
    assert view.availability(Device("b", availability="online", info=info)) == (
        "2025-10-24T09:00:00.000Z", "agentStart",
    )  # fmt: skip
    quiet = Device("c", availability="offline", state=state())
    assert view.availability(quiet) == ("2025-10-24T10:15:00.000Z", "lastReport")
    assert view.availability(Device("d")) == (None, None)


def test_a_device_row_sorts_alerts_by_severity_and_counts_services_without_a_state() -> None:
    services = {"b": status("b", error=error()), "a": status("a")}
    alerts = {"a": alert("a"), "b": alert("b", "critical")}
    row = view.device_row(
        Device("dev-001", availability="online", services=services, alerts=alerts)
    )
    assert [a["severity"] for a in row["alerts"]] == ["critical", "warning"]
    assert [s["name"] for s in row["services"]] == ["a", "b"]
    assert row["counts"] == {"running": 1, "error": 1} and row["converged"] is None


def test_the_drawer_splits_crash_output_from_the_message_and_lists_history_newest_first() -> None:
    crash = "Error: container exited with code 1; last output: starting | oops: no config"
    failing = status(state="error", error=error("CrashLoopBackOff", message=crash))
    history = [HistoryEntry("2025-10-24T10:00:00.000Z", "running"),
               HistoryEntry("2025-10-24T10:15:00.000Z", "error", "CrashLoopBackOff")]  # fmt: skip
    device = Device("dev-001", services={"web": failing}, history={"web": history})
    detail = view.service_detail(device, "web")
    assert detail is not None
    assert detail["error"]["message"] == "Error: container exited with code 1"
    assert detail["output"] == ["starting", "oops: no config"]
    assert [h["serviceStatus"] for h in detail["history"]] == ["error", "running"]
    assert view.service_detail(device, "nope") is None
    assert view.split_output("plain") == ("plain", [])
