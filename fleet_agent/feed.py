"""Alerts, history and state-change events decided once, in the core, for every sink (pure).

From each pass's `Report` this derives each service's alert and history and the device-level
alert, one event per state change, and the alert transitions (raised, escalated, cleared), and
hands them back inside the `Report`, so MQTT, the local files and webhooks all see the same
ones. Alerts follow the contract: raised as `warning`, escalated to `critical`
(`MaxRetriesExceeded`) when retries are exhausted, cleared when the service recovers or leaves,
and only replaced when severity or type changes. Publishers only compare and send.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
from msgspec.structs import replace

from fleet_agent.intake import NO_TARGET
from fleet_agent.model import (
    Ack,
    Alert,
    AlertChange,
    AlertEvent,
    Event,
    HistoryEntry,
    ServiceStatus,
    iso,
)
from fleet_agent.report import Report

AGENT = "_agent"
HISTORY_LENGTH = 20


class FeedState(msgspec.Struct, frozen=True):
    """What the feed remembers between passes."""

    statuses: dict[str, ServiceStatus] = {}
    alerts: dict[str, Alert] = {}
    history: dict[str, list[HistoryEntry]] = {}
    rejected: Ack | None = None
    engine_error: str | None = None
    device_id: str = ""
    announced: dict[str, Alert] = {}  # the alerts of the last completed report


def _severity(status: ServiceStatus) -> tuple[str, str] | None:
    error = status.error
    if error is None:
        return None
    if error.exhausted:
        return "critical", "MaxRetriesExceeded"
    return "warning", error.type  # InvalidImageName too: the contract escalates on exhaustion


def next_alert(
    previous: Alert | None, status: ServiceStatus, now: float, crash_settling: bool = False
) -> Alert | None:
    """`crash_settling`: the service's crash backoff has not been reset yet.

    A crash-looping container is briefly `running` after each restart; its alert stays up
    until it has run long enough to reset the crash backoff (FLEET_AGENT_CRASH_RESET_AFTER)."""
    level = _severity(status)
    if level is None or status.error is None:
        crashing = previous is not None and previous.type == "CrashLoopBackOff"
        running = status.service_status == "running"
        return previous if crashing and running and crash_settling else None
    severity, kind = level
    if previous is not None and (previous.severity, previous.type) == level:
        return previous
    return Alert(
        device_id=status.device_id,
        service=status.service_name,
        severity=severity,
        type=kind,
        message=status.error.message,
        raised_at=previous.raised_at if previous else iso(now),
        updated_at=iso(now),
        retry_count=status.error.retry_count,
    )


def agent_alert(
    previous: Alert | None,
    device_id: str,
    engine_error: str | None,
    rejected: Ack | None,
    now: float,
) -> Alert | None:
    """The device-level alert: an unreachable engine first, else the last rejected target."""
    if engine_error is not None:
        severity, kind, message = "critical", "EngineUnavailable", engine_error
    elif rejected is not None:
        detail = "; ".join(f"{e.path}: {e.message}" for e in rejected.errors)
        severity, kind = "warning", "TargetRejected"
        which = "target" if rejected.version is None else f"target version {rejected.version}"
        message = f"{which} rejected ({rejected.code}): {detail}"
    else:
        return None
    same = (
        (previous.device_id, previous.severity, previous.type, previous.message)
        if previous
        else None
    )
    if same == (device_id, severity, kind, message):
        return previous
    raised = previous.raised_at if previous and previous.type == kind else iso(now)
    return Alert(device_id, AGENT, severity, kind, message, raised, iso(now))


def _entry(status: ServiceStatus) -> HistoryEntry:
    error = status.error
    return HistoryEntry(
        timestamp=status.updated_at,
        service_status=status.service_status,
        error_type=error.type if error else None,
        message=error.message if error else None,
        retry_count=error.retry_count if error else None,
    )


def _changed(before: ServiceStatus | None, after: ServiceStatus) -> bool:
    if before is None:
        return True
    if before.service_status != after.service_status:
        return True
    return _error_key(before) != _error_key(after)


def _error_key(status: ServiceStatus) -> tuple[str, int, bool] | None:
    error = status.error
    return (error.type, error.retry_count, error.exhausted) if error else None


def state_event(before: ServiceStatus | None, after: ServiceStatus) -> Event:
    error = after.error
    previous = before.service_status if before else "absent"
    return Event(
        device_id=after.device_id,
        type="state",
        timestamp=after.updated_at,
        service=after.service_name,
        ok=error is None,
        message=f"{previous} -> {after.service_status}"
        + (f": {error.type}: {error.message}" if error else ""),
        error_type=error.type if error else None,
        retry_count=error.retry_count if error else None,
        next_retry=error.next_retry if error else None,
    )


def advance(state: FeedState, report: Report, now: float) -> tuple[FeedState, list[Event]]:
    """The feed after this report: statuses, alerts and history, and the state-change events."""
    statuses = {s.service_name: s for s in report.services}
    # the device alert is carried over: it changes only through _with_agent_alert below
    alerts = {AGENT: state.alerts[AGENT]} if AGENT in state.alerts else {}
    history: dict[str, list[HistoryEntry]] = {}
    events = list(report.events)
    for name, status in statuses.items():
        before = state.statuses.get(name)
        entries = state.history.get(name, [])
        if _changed(before, status):
            events.append(state_event(before, status))
            entries = [*entries, _entry(status)][-HISTORY_LENGTH:]
        history[name] = entries
        settling = name in report.crash_settling
        alert = next_alert(state.alerts.get(name), status, now, settling)
        if alert is not None:
            alerts[name] = alert
    state = replace(
        state,
        statuses=statuses,
        alerts=alerts,
        history=history,
        engine_error=report.engine_error,
        device_id=report.state.device_id,
    )
    return _with_agent_alert(state, now), events


def _with_agent_alert(state: FeedState, now: float) -> FeedState:
    previous = state.alerts.get(AGENT)
    alert = agent_alert(previous, state.device_id, state.engine_error, state.rejected, now)
    alerts = {k: v for k, v in state.alerts.items() if k != AGENT}
    return replace(state, alerts=alerts | ({AGENT: alert} if alert else {}))


def with_ack(state: FeedState, ack: Ack, now: float) -> FeedState:
    """A rejected target raises the device alert until a target is accepted again."""
    if ack.code == NO_TARGET:
        return state
    return _with_agent_alert(replace(state, rejected=None if ack.accepted else ack), now)


_RANK = {"warning": 1, "critical": 2}


def alert_changes(before: dict[str, Alert], after: dict[str, Alert]) -> list[AlertChange]:
    """The transitions from one pass's alerts to the next's, services in name order."""
    changes: list[AlertChange] = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if new is None and old is not None:
            changes.append(AlertChange("cleared", name, old))
        elif new is not None and new != old:
            higher = old is not None and _RANK.get(new.severity, 0) > _RANK.get(old.severity, 0)
            event: AlertEvent = "escalated" if higher else "raised"
            changes.append(AlertChange(event, name, new))
    return changes


def conclude(state: FeedState, report: Report, now: float) -> tuple[FeedState, Report]:
    """The feed after this report, and the report completed with its alerts, their
    transitions, the history and the state-change events."""
    after, events = advance(state, report, now)
    completed = replace(
        report,
        events=events,
        alerts=after.alerts,
        alert_changes=alert_changes(state.announced, after.alerts),
        history=after.history,
    )
    return replace(after, announced=after.alerts), completed


class Topic(NamedTuple):
    """A retained topic's value (encoded only when sent) and its content key: equal keys mean
    nothing worth sending changed (a new `updatedAt` alone is no change)."""

    value: object
    key: object

    @property
    def payload(self) -> bytes:
        return msgspec.json.encode(self.value)


def retained(report: Report) -> dict[str, Topic]:
    """Every retained topic suffix with its value and content key. Keys are the Structs
    themselves without their stamps, compared with `==`: no topic is encoded to find out
    whether it changed."""
    state = report.state
    topics = {"state": Topic(state, replace(state, updated_at=""))}
    for status in report.services:
        name = status.service_name
        topics[f"services/{name}"] = Topic(status, replace(status, updated_at=""))
        history = report.history.get(name, [])
        topics[f"history/{name}"] = Topic(history, history)
    for name, alert in report.alerts.items():
        topics[f"alerts/{name}"] = Topic(alert, alert)
    return topics
