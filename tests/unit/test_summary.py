"""The daily summary's ledger: errors by type, restarts, time in error, worst severity."""

from __future__ import annotations

import msgspec
from msgspec.structs import replace

from fleet_agent import summary
from fleet_agent.model import Alert, ErrorType, ServiceStatus, iso
from tests.unit.factories import DEVICE, T0, status, status_error

DAY = 86400.0


def alert(severity: str = "warning", kind: str = "ImagePullBackOff") -> Alert:
    return Alert(DEVICE, "nodered", severity, kind, "manifest unknown", iso(T0), iso(T0), 1)


def pull_failure(count: int, at: float, exhausted: bool = False) -> ServiceStatus:
    kind: ErrorType = "ErrImagePull" if exhausted else "ImagePullBackOff"
    error = status_error(kind, retry_count=count, at=at, exhausted=exhausted, max_retries=3)
    return status(service_status="error", error=error, at=at, container_id=None)


def crashed(count: int, restarts: int, at: float) -> ServiceStatus:
    error = status_error("CrashLoopBackOff", "exited with code 3", retry_count=count, at=at)
    return replace(status(service_status="error", error=error, at=at), restart_count=restarts)


def running(at: float, restarts: int = 0) -> ServiceStatus:
    return replace(status(at=at), restart_count=restarts)


def fold(*looks: tuple[float, list[ServiceStatus], dict[str, Alert]]) -> summary.Ledger:
    ledger = summary.new_ledger(DAY)
    for at, statuses, alerts in looks:
        ledger = summary.observe(ledger, statuses, alerts, at)
    return ledger


def row(ledger: summary.Ledger, now: float, name: str = "nodered") -> summary.ServiceSummary:
    return summary.summarize(ledger, DEVICE, now, DAY).services[name]


def test_each_failed_pull_counts_once_under_the_type_it_showed_even_when_passes_skip_some() -> None:
    ledger = fold(
        (T0, [pull_failure(1, T0)], {"nodered": alert()}),
        (T0 + 1, [pull_failure(1, T0)], {"nodered": alert()}),  # the same failure, seen again
        (T0 + 30, [pull_failure(3, T0 + 30, exhausted=True)], {"nodered": alert("critical")}),
    )
    got = row(ledger, T0 + 40)
    # 2 and 3 happened between two looks: both are counted, under the type shown last
    assert got.errors == {"ImagePullBackOff": 1, "ErrImagePull": 2}
    assert got.worst_severity == "critical"
    assert got.status == "error"
    assert got.seconds_in_error == 40  # up to now, as it is still in error


def test_a_crash_loop_counts_each_crash_and_restart_not_the_running_moments_between() -> None:
    ledger = fold(
        (T0, [crashed(1, 0, T0)], {"nodered": alert(kind="CrashLoopBackOff")}),
        (T0 + 5, [running(T0 + 5, restarts=1)], {"nodered": alert(kind="CrashLoopBackOff")}),
        (T0 + 6, [crashed(2, 1, T0 + 6)], {"nodered": alert(kind="CrashLoopBackOff")}),
        (T0 + 12, [running(T0 + 12, restarts=2)], {}),
    )
    got = row(ledger, T0 + 20)
    assert got.errors == {"CrashLoopBackOff": 2}
    assert got.restarts == 2
    assert got.seconds_in_error == 5 + 6  # in error from 0 to 5 and from 6 to 12
    assert got.status == "running" and got.worst_severity == "warning"


def test_a_count_that_went_down_started_over_and_counts_from_zero() -> None:
    ledger = fold(
        (T0, [pull_failure(3, T0)], {}),
        (T0 + 1, [pull_failure(1, T0 + 1)], {}),  # a retry command reset it, then it failed
    )
    assert row(ledger, T0 + 2).errors == {"ImagePullBackOff": 4}


def test_a_healthy_service_has_nothing_to_report() -> None:
    ledger = fold((T0, [running(T0)], {}), (T0 + 60, [running(T0 + 60)], {}))
    assert row(ledger, T0 + 60) == summary.ServiceSummary("running", {}, 0, 0, None)


def test_a_service_that_left_stays_as_removed_until_its_counts_leave_the_window() -> None:
    ledger = fold((T0, [pull_failure(1, T0)], {}), (T0 + 10, [], {}))
    got = row(ledger, T0 + 20)
    assert got.status == summary.REMOVED and got.errors == {"ImagePullBackOff": 1}
    assert got.seconds_in_error == 10  # it stopped counting when it left
    later = summary.observe(ledger, [], {}, T0 + DAY + 1000)
    assert "nodered" not in later.services


def test_only_the_last_window_is_summed_and_old_buckets_are_dropped() -> None:
    ledger = fold(
        (T0, [pull_failure(1, T0)], {"nodered": alert("critical")}),
        (T0 + 1, [running(T0 + 1)], {}),
        (T0 + DAY + 600, [pull_failure(1, T0 + DAY + 600)], {"nodered": alert()}),
    )
    got = row(ledger, T0 + DAY + 700)
    assert got.errors == {"ImagePullBackOff": 1} and got.worst_severity == "warning"
    doc = summary.summarize(ledger, DEVICE, T0 + DAY + 700, DAY)
    assert doc.from_ == iso(T0 + 700) and doc.to == iso(T0 + DAY + 700)


def test_the_ledger_stays_bounded_however_many_passes_a_day_holds() -> None:
    ledger = summary.new_ledger(DAY)
    for i in range(3000):
        at = T0 + i * 60.0  # two days of a pass a minute, crashing every time
        ledger = summary.observe(ledger, [crashed(i + 1, i, at)], {}, at)
    buckets = ledger.services["nodered"].buckets
    assert len(buckets) <= summary.BUCKETS + 1
    assert len(msgspec.json.encode(ledger)) < 64 * 1024


def test_a_healthy_service_keeps_no_buckets_however_long_it_runs() -> None:
    ledger = summary.new_ledger(DAY)
    for i in range(2000):  # a day and a half of a pass a minute, healthy all along
        at = T0 + i * 60.0
        ledger = summary.observe(ledger, [running(at, restarts=1 if i >= 1000 else 0)], {}, at)
    track = ledger.services["nodered"]
    assert list(track.buckets.values()) == [summary.Bucket(restarts=1)]  # the one restart only
    assert row(ledger, T0 + 1000 * 60.0).restarts == 1


def test_a_healthy_service_that_left_still_shows_as_removed_for_a_window() -> None:
    ledger = fold((T0, [running(T0)], {}), (T0 + 60, [], {}))
    assert row(ledger, T0 + 120) == summary.ServiceSummary(summary.REMOVED, {}, 0, 0, None)
    later = summary.observe(ledger, [], {}, T0 + DAY + 1000)
    assert "nodered" not in later.services


def test_at_most_max_removed_services_that_left_are_kept_those_gone_longest_go_first() -> None:
    ledger = summary.new_ledger(DAY)
    names = [f"s{i:03d}" for i in range(summary.MAX_REMOVED + 20)]
    for i, name in enumerate(names):  # a target that renames its one service every 10 minutes
        at = T0 + i * 600.0
        ledger = summary.observe(ledger, [replace(running(at), service_name=name)], {}, at)
    kept = set(ledger.services)
    assert len(kept) == summary.MAX_REMOVED + 1  # the removed ones, and the one in the target
    assert names[-1] in kept and names[-2] in kept
    assert not kept & set(names[:19])  # the first ones left longest ago


def test_a_ledger_read_back_after_a_restart_does_not_count_the_downtime() -> None:
    ledger = fold((T0, [pull_failure(1, T0)], {}))
    back = msgspec.json.decode(msgspec.json.encode(ledger), type=summary.Ledger)
    back = summary.restarted(back, DAY)
    # the agent kept its retry counts: the failure it shows is the one counted before
    back = summary.observe(back, [pull_failure(1, T0)], {}, T0 + 3600)
    got = row(back, T0 + 3600)
    assert got.errors == {"ImagePullBackOff": 1}
    assert got.seconds_in_error == 0  # the hour the agent was away is not counted
    # a failure after the restart is a new one, even when its count started over
    again = summary.observe(back, [pull_failure(1, T0 + 3601)], {}, T0 + 3601)
    assert row(again, T0 + 3601).errors == {"ImagePullBackOff": 2}


def test_a_ledger_kept_for_another_window_starts_over() -> None:
    ledger = fold((T0, [pull_failure(1, T0)], {}))
    assert summary.restarted(ledger, 600.0) == summary.new_ledger(600.0)


def test_counts_key_ignores_seconds_but_sees_new_errors() -> None:
    first = fold((T0, [pull_failure(1, T0)], {}))
    later = summary.observe(first, [pull_failure(1, T0)], {}, T0 + 5)
    assert summary.counts_key(first) == summary.counts_key(later)
    failed_again = summary.observe(first, [pull_failure(2, T0 + 5)], {}, T0 + 5)
    assert summary.counts_key(first) != summary.counts_key(failed_again)


def test_the_summary_document_has_the_contract_shape() -> None:
    doc = summary.summarize(fold((T0, [pull_failure(1, T0)], {})), DEVICE, T0 + 95, DAY)
    assert msgspec.json.decode(msgspec.json.encode(doc)) == {
        "deviceId": DEVICE,
        "from": iso(T0 + 95 - DAY),
        "to": iso(T0 + 95),
        "services": {
            "nodered": {
                "status": "error", "errors": {"ImagePullBackOff": 1}, "restarts": 0,
                "secondsInError": 95, "worstSeverity": None,
            }
        },
    }  # fmt: skip
