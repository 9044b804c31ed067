"""What the operator commands show (pure): rows, relative times, folded history, verdicts."""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pytest
from rich.console import Console

from fleet_agent.model import Progress, ServiceError, ServiceStatus, iso
from fleet_agent.operator import converge, render
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.watch_cmd import screen
from fleet_agent.operator.wire import Alert, DeviceState, HistoryEntry
from tests.unit.factories import T0


def status(
    name: str = "web", state: str = "running", version: int = 2, **extra: Any
) -> ServiceStatus:
    fields: dict[str, Any] = {
        "device_id": "dev-001",
        "app_id": 1,
        "app_name": "a",
        "service_id": 1,
        "service_name": name,
        "image_name": "reg/app:1",
        "service_status": state,
        "container_id": None,
        "running_image": None,
        "restart_count": 0,
        "error": None,
        "target_version": version,
        "updated_at": iso(T0 - 30),
    }
    return ServiceStatus(**(fields | extra))


def failing(retry: int = 3, exhausted: bool = False, next_in: float | None = 42) -> ServiceError:
    next_retry = iso(T0 + next_in) if next_in is not None and not exhausted else None
    return ServiceError(
        "ImagePullBackOff", "manifest unknown", iso(T0 - 5), retry, 10, next_retry, exhausted
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (42, "42s"),
        (192, "3m12s"),
        (180, "3m"),
        (900, "15m"),
        (3 * 3600 + 300, "3h5m"),
        (12 * 3600, "12h"),
        (3 * 86400, "3d"),
        (-5, "0s"),
    ],
)
def test_durations_read_like_kubectls(seconds: float, text: str) -> None:
    assert render.duration(seconds) == text


def test_relative_times_say_in_or_ago() -> None:
    assert render.relative(iso(T0 + 42), T0) == "in 42s"
    assert render.relative(iso(T0 - 120), T0) == "2m ago"
    assert render.relative(None, T0) == "-" and render.relative("bad", T0) == "-"


def test_a_failing_service_row_shows_reason_retries_and_next_retry() -> None:
    device = Device(
        "dev-001", availability="online", services={"web": status(state="error", error=failing())}
    )
    row = render.device_rows(device, T0)[0]
    assert row == (
        "dev-001",
        "online",
        "web",
        "error",
        "ImagePullBackOff",
        "3/10",
        "in 42s",
        "reg/app:1",
        "30s",
    )
    exhausted = status(state="error", error=failing(10, exhausted=True))
    assert render.next_retry(exhausted, T0) == "exhausted"


def test_an_offline_device_says_for_how_long_as_far_as_it_is_known() -> None:
    seen = Device("d", availability="offline", availability_since=T0 - 90)
    assert render.availability(seen, T0) == "offline (for 1m30s)"
    retained = Device("d", availability="offline", services={"web": status()})
    assert render.availability(retained, T0) == "offline (last report 30s)"
    assert render.availability(Device("d"), T0) == "unknown"
    assert render.in_trouble(retained) and render.in_trouble(Device("d"))


def test_a_device_without_services_or_with_a_device_alert_still_has_rows() -> None:
    assert len(render.device_rows(Device("d", availability="online"), T0)) == 1
    alert = Alert("d", "_agent", "warning", "TargetRejected", "bad", iso(T0), iso(T0))
    rows = render.device_rows(Device("d", availability="online", alerts={"_agent": alert}), T0)
    assert rows[0][2:5] == ("_agent", "alert", "TargetRejected")


def test_download_progress_shows_in_the_status_column() -> None:
    pulling = status(state="downloading", progress=Progress(42, 420, 1000))
    assert render.state_text(pulling) == "downloading 42%"


def entry(
    at: float, state: str, error: str | None = None, retry: int | None = None
) -> HistoryEntry:
    return HistoryEntry(iso(at), state, error, "manifest unknown" if error else None, retry)


def test_history_folds_a_backoff_episode_into_one_line_with_its_count_and_span() -> None:
    history = [
        entry(T0, "downloading"),
        entry(T0 + 1, "error", "ImagePullBackOff", 1),
        entry(T0 + 11, "downloading", "ImagePullBackOff", 1),
        entry(T0 + 12, "error", "ImagePullBackOff", 2),
        entry(T0 + 32, "downloading", "ImagePullBackOff", 2),
        entry(T0 + 33, "error", "ImagePullBackOff", 3),
        entry(T0 + 40, "running"),
    ]
    folds = render.fold(history)
    assert [f.count for f in folds] == [1, 3, 1]
    assert folds[1].label() == "(x3 over 32s)" and folds[1].last.retry_count == 3
    assert folds[0].label() == ""


def test_status_json_holds_every_payload_as_the_device_sent_it() -> None:
    state = DeviceState("d", "0.1.0", 2, True, {"running": 1}, iso(T0))
    device = Device("d", availability="online", state=state, services={"web": status()})
    doc = render.device_document(device, T0)
    assert doc["services"]["web"] == msgspec.to_builtins(status())
    assert doc["state"]["targetVersion"] == 2 and doc["lastReport"] == iso(T0)
    assert msgspec.json.decode(msgspec.json.encode(doc)) == doc


def test_the_verdict_waits_for_statuses_of_the_applied_version() -> None:
    old = Device("d", services={"web": status(version=1)})
    assert converge.verdict(old, ["web"], 2) is None
    up = Device("d", services={"web": status(version=2)})
    assert converge.verdict(up, ["web"], 2) == ("ok", "1 service running")
    half = Device("d", services={"web": status(version=2), "db": status("db", "downloading")})
    assert converge.verdict(half, ["web", "db"], 2) is None


def test_the_verdict_fails_as_soon_as_one_service_fails() -> None:
    bad = status("db", "error", error=failing())
    device = Device("d", services={"web": status("web", "downloading"), "db": bad})
    outcome = converge.verdict(device, ["web", "db"], 2)
    assert outcome is not None and outcome.outcome == "failed"
    assert outcome.message == "db: ImagePullBackOff: manifest unknown"
    crashed = Device("d", services={"job": status("job", "exited", exit_code=3)})
    assert converge.verdict(crashed, ["job"], 2) == ("failed", "job: exited with code 3")
    done = Device("d", services={"job": status("job", "exited", exit_code=0)})
    assert converge.verdict(done, ["job"], 2) == ("ok", "0 services running, 1 completed")


def test_an_empty_target_has_converged_once_the_device_reports_its_version() -> None:
    state = DeviceState("d", "0.1.0", 2, True, {}, iso(T0))
    assert converge.verdict(Device("d", state=state), [], 2) == ("ok", "no services")
    assert converge.verdict(Device("d"), [], 2) is None


def test_watch_shows_one_line_per_device_when_the_table_does_not_fit() -> None:
    def render_text(height: int, count: int) -> str:
        fleet = [
            Device(
                f"dev-{n:04d}",
                availability="online",
                services={"web": status(), "db": status("db")},
            )
            for n in range(count)
        ]
        fleet[min(7, count - 1)] = Device(
            "dev-0007",
            availability="online",
            services={"web": status(state="error", error=failing())},
        )
        out = Console(width=200, record=True, file=io.StringIO())
        out.print(screen(fleet, T0, height))
        return out.export_text()

    small = render_text(40, 3)
    assert "DEVICE" in small and small.count("dev-") == 5  # the full table: a row per service
    assert "ImagePullBackOff" in small
    large = render_text(20, 1000).splitlines()
    assert "DEVICE" not in "\n".join(large)
    assert (
        large[1].startswith("dev-0007") and "ImagePullBackOff 3/10 in 42s" in large[1]
    )  # trouble first
    assert large[-1] == "... and 983 more devices" and len(large) <= 20
    assert "1000 devices, 1 in trouble" in large[0]
