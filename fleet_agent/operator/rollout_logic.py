"""The decisions of a rollout, pure: judge each device from what it reports, apply the abort
rule, move phases, pick the next devices and their versions, roll back, take control requests.

Every function takes the state, the fleet model (`fleet.Device`s) and `now`, and returns a new
state; nothing here talks to the broker. `step` returns the device ids whose target (or previous
target, when rolling back) must be published: their intent is already in the returned state, so
the controller saves it first and publishes after (see `rollout_driver`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec.structs import replace

from fleet_agent.operator.fleet import Device
from fleet_agent.operator.rollout_model import (
    TERMINAL,
    Record,
    RolloutError,
    Spec,
    State,
    check_spec,
    failure_limit_exceeded,
    plan,
    select,
    service_names,
    target_key,
)
from fleet_agent.operator.wire import ServiceStatus

Devices = Mapping[str, Device]
ACTIVE = frozenset({"updating", "baking"})


def start(spec: Spec, devices: Devices, now: float) -> State:
    """A new rollout over the devices the selector matches; offline ones skipped or kept."""
    check_spec(spec)
    chosen = select(devices, spec.devices, spec.labels)
    if not chosen:
        raise RolloutError("the selector matches no device")
    ends = plan(len(chosen), spec.phases, spec.exponential)
    records = []
    for index, device_id in enumerate(chosen):
        phase = next(i for i, end in enumerate(ends) if index < end)
        record = Record(device_id, phase)
        if spec.offline == "skip" and not devices[device_id].online:
            record = replace(record, stage="skipped", reason="offline")
        records.append(record)
    return State(spec, phase_ends=ends, records=records, created_at=now, updated_at=now)


def next_version(device: Device | None) -> int:
    """One more than anything the device accepted or holds retained."""
    known: list[int | None] = []
    if device is not None:
        known.append(device.accepted_version)
        if device.target is not None:
            known.append(device.target.version)
        elif device.target_payload:
            known.append(_payload_version(device.target_payload))
    return max([v for v in known if v is not None], default=0) + 1


def _payload_version(payload: bytes) -> int | None:
    try:
        value = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    version = value.get("version") if isinstance(value, dict) else None
    return version if isinstance(version, int) else None


def _previous_doc(device: Device | None) -> dict[str, Any] | None:
    if device is None or not device.target_payload:
        return None
    try:
        doc = msgspec.json.decode(device.target_payload)
    except msgspec.DecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def healthy(device: Device, names: list[str], version: int) -> bool:
    """Every service of the release runs at `version` without an error."""
    statuses = [device.services.get(n) for n in names]
    return all(_good(s, version) for s in statuses)


def _good(status: ServiceStatus | None, version: int) -> bool:
    return (
        status is not None
        and status.target_version == version
        and status.service_status == "running"
        and status.error is None
    )


def judge(record: Record, device: Device | None, spec: Spec, now: float) -> Record:
    """The new record of an updating or baking device, from what it reports now."""
    version = record.version
    if record.stage not in ACTIVE or version is None or not record.sent:
        return record
    fail = _failure(record, device, spec, version)
    if fail is not None:
        return replace(record, stage="failed", reason=fail)  # baking_since: failed in the bake
    assert device is not None
    names = service_names(spec.target)
    if healthy(device, names, version):
        restarts = {n: device.services[n].restart_count for n in names}
        if record.stage != "baking" or restarts != record.restarts:
            # a restart during the bake starts the bake again
            return replace(record, stage="baking", baking_since=now, restarts=restarts)
        if now - (record.baking_since or now) >= spec.bake:
            return replace(record, stage="succeeded")
        return record
    return _unhealthy(record, spec, now)


def _unhealthy(record: Record, spec: Spec, now: float) -> Record:
    if record.stage == "baking":
        record = replace(record, stage="updating", baking_since=None)
    deadline = (record.published_at or now) + spec.progress_deadline + spec.bake
    if now > deadline:
        return replace(record, stage="failed", reason="timeout")
    return record


def _failure(record: Record, device: Device | None, spec: Spec, version: int) -> str | None:
    if device is None or not device.online:
        return "offline" if "offline" in spec.abort_on else None
    ack = device.ack
    if ack is not None and ack.version == version and not ack.accepted:
        return f"Rejected{ack.code}"
    for name in service_names(spec.target):
        status = device.services.get(name)
        if status is None or status.target_version != version or status.error is None:
            continue
        if status.error.type in spec.abort_on:
            return status.error.type
    return None


def counts(state: State, phase: int) -> tuple[int, int, int]:
    """(finished, counted failures, size) of a phase."""
    mine = [r for r in state.records if r.phase == phase and r.stage != "skipped"]
    finished = [r for r in mine if r.stage in TERMINAL]
    failed = [r for r in finished if r.stage == "failed" and _counts(r, state.spec)]
    return len(finished), len(failed), len(mine)


def _counts(record: Record, spec: Spec) -> bool:
    reason = record.reason or ""
    return reason.startswith("Rejected") or reason in spec.abort_on


def step(state: State, devices: Devices, now: float) -> tuple[State, list[str]]:
    """Advance the rollout once; returns the new state and the devices to publish to."""
    if state.status == "running":
        state = _judge_all(state, devices, now)
        state = _abort_or_advance(state, now)
    if state.status == "running":
        state = _launch(state, devices, now)
    if state.status == "rolling-back":
        state = _rollback(state, devices, now)
    state = replace(state, updated_at=now)
    pending = [r.device for r in state.records if _unsent(r)]
    return state, pending


def _unsent(record: Record) -> bool:
    if record.revert_version is not None:
        return not record.revert_sent
    return record.version is not None and not record.sent and record.stage in ACTIVE


def _judge_all(state: State, devices: Devices, now: float) -> State:
    records = [judge(r, devices.get(r.device), state.spec, now) for r in state.records]
    return replace(state, records=records)


def _abort_or_advance(state: State, now: float) -> State:
    finished, failed, size = counts(state, state.phase)
    if failure_limit_exceeded(state.spec, failed, finished):
        reasons = Counter(
            r.reason for r in state.records if r.phase == state.phase and r.stage == "failed"
        )
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        status = "rolling-back" if state.spec.on_abort == "rollback" else "aborted"
        return replace(state, status=status, reason=f"phase {state.phase + 1}: {why}")
    while finished == size:
        if state.phase + 1 >= len(state.phase_ends):
            return replace(state, status="succeeded")
        state = replace(state, phase=state.phase + 1)
        finished, failed, size = counts(state, state.phase)
    return state


def _launch(state: State, devices: Devices, now: float) -> State:
    """Publish intent for the next pending devices of the phase, up to `max_in_flight`."""
    spec = state.spec
    records = list(state.records)
    previous = dict(state.previous)
    in_flight = sum(1 for r in records if r.stage in ACTIVE)
    limit = spec.max_in_flight or len(records)
    for index, record in enumerate(records):
        if in_flight >= limit:
            break
        if record.phase != state.phase or record.stage != "pending":
            continue
        device = devices.get(record.device)
        if device is None or not device.online:
            if spec.offline == "skip":
                records[index] = replace(record, stage="skipped", reason="offline")
            continue  # `wait`: published once it is back
        key, body = target_key(_previous_doc(device))
        if body is not None:
            previous.setdefault(key, body)
        version = next_version(device)
        records[index] = replace(
            record, stage="updating", version=version, previous=key, published_at=now
        )
        in_flight += 1
    return replace(state, records=records, previous=previous)


def _rollback(state: State, devices: Devices, now: float) -> State:
    records = []
    for old in state.records:
        record = old
        if old.version is not None and old.revert_version is None:
            version = max(next_version(devices.get(old.device)), old.version + 1)
            record = replace(old, stage="reverting", revert_version=version, published_at=now)
        elif old.stage == "reverting" and old.revert_sent:
            record = _judge_revert(old, devices.get(old.device), state, now)
        records.append(record)
    state = replace(state, records=records)
    if all(r.stage not in ("reverting",) for r in records):
        return replace(state, status="rolled-back")
    return state


def _judge_revert(record: Record, device: Device | None, state: State, now: float) -> Record:
    version = record.revert_version
    assert version is not None
    if record.previous in (None, ""):
        return replace(record, stage="reverted", reverted_at=now)
    doc = state.previous.get(record.previous or "", {})
    back = device is not None and (device.accepted_version or 0) >= version
    if back and device is not None and healthy(device, service_names(doc), version):
        return replace(record, stage="reverted", reverted_at=now)
    if now > (record.published_at or now) + state.spec.progress_deadline:
        return replace(record, stage="revert-failed", reason="timeout")
    return record


def payload_for(state: State, device_id: str) -> tuple[dict[str, Any] | None, int]:
    """The document to publish for a device with unsent intent, and its version. None: clear
    the target (rolling back a device that had none)."""
    record = next(r for r in state.records if r.device == device_id)
    if record.revert_version is not None:
        doc = state.previous.get(record.previous or "")
        return (None if doc is None else dict(doc)), record.revert_version
    assert record.version is not None
    return dict(state.spec.target), record.version


def mark_sent(state: State, device_ids: list[str]) -> State:
    chosen = set(device_ids)

    def sent(record: Record) -> Record:
        if record.device not in chosen:
            return record
        if record.revert_version is not None:
            return replace(record, revert_sent=True)
        return replace(record, sent=True)

    return replace(state, records=[sent(r) for r in state.records])


def reconcile(state: State, devices: Devices) -> State:
    """After a restart: intent recorded but maybe not published. A device whose retained
    target already carries the recorded version was published to; the others still need it."""

    def check(record: Record) -> Record:
        device = devices.get(record.device)
        held = device.target.version if device and device.target else None
        accepted = device.accepted_version if device else None
        seen = max([v for v in (held, accepted) if v is not None], default=None)
        if record.revert_version is not None and not record.revert_sent:
            if seen is not None and seen >= record.revert_version:
                return replace(record, revert_sent=True)
        elif record.version is not None and not record.sent and (seen or 0) >= record.version:
            return replace(record, sent=True)
        return record

    return replace(state, records=[check(r) for r in state.records])


def control(state: State, action: str, request_id: str, now: float) -> State:
    """Apply `pause`, `resume`, `abort` or `rollback` (once per request id)."""
    if request_id == state.control:
        return state
    state = replace(state, control=request_id, updated_at=now)
    final = state.status in ("rolled-back",)
    if action == "pause" and state.status == "running":
        return replace(state, status="paused", reason="paused by the operator")
    if action == "resume" and state.status == "paused":
        return replace(state, status="running", reason=None)
    if action == "abort" and state.status in ("running", "paused"):
        return replace(state, status="aborted", reason="aborted by the operator")
    if action == "rollback" and not final and state.status != "rolling-back":
        return replace(state, status="rolling-back", reason="rollback by the operator")
    return state


def summary(state: State) -> list[dict[str, Any]]:
    """Per phase: its size and how many devices are in each stage; failures by reason."""
    rows = []
    for phase, _end in enumerate(state.phase_ends):
        mine = [r for r in state.records if r.phase == phase]
        stages: Counter[str] = Counter(r.stage for r in mine)
        reasons = Counter(r.reason or "?" for r in mine if r.stage in ("failed", "revert-failed"))
        row: dict[str, Any] = {"phase": phase + 1, "devices": len(mine), "reasons": reasons}
        row.update(stages)
        rows.append(row)
    return rows
