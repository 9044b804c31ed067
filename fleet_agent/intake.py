"""Whether a received target is taken (pure): size limit, strict decoding, version rules, ack.

Every transport (the local file, MQTT) hands raw bytes here and gets back the ack to publish and,
only when the target is to be acted on, the decoded target. A rejected target changes nothing.
"""

from __future__ import annotations

import msgspec

from fleet_agent.admission import FORBIDDEN, Admission
from fleet_agent.jsondoc import Malformed, load
from fleet_agent.model import Ack, FieldError, Target, iso
from fleet_agent.validate import DEFAULT_MAX_SERVICES, raw_version, read_target

DEFAULT_MAX_BYTES = 256 * 1024
NO_TARGET = 204  # an empty payload: "no target", nothing is touched (our extension of the codes)
NOT_PERSISTED = 500  # the device could not store it (disk full, read-only): not taken (extension)


class Decision(msgspec.Struct, frozen=True):
    ack: Ack
    target: Target | None  # set only when the target is new and must be acted on


def _reject(
    code: int, now: float, errors: list[FieldError], version: int | None = None
) -> Decision:
    return Decision(Ack(version, False, code, iso(now), errors), None)


def not_persisted(payload: bytes, now: float, reason: str) -> Ack:
    message = f"the target could not be stored on the device, so it is not taken: {reason}"
    return Ack(version_of(payload), False, NOT_PERSISTED, iso(now), [FieldError("$", message)])


def internal_error(payload: bytes, now: float, exc: BaseException) -> Ack:
    """An error of ours while taking a target: it is answered all the same, and not taken."""
    message = f"the device failed to take the target (an internal error; nothing changed): {exc!r}"
    return Ack(version_of(payload), False, NOT_PERSISTED, iso(now), [FieldError("$", message)])


def version_of(payload: bytes) -> int | None:
    """Best effort, so that even a rejected ack names the version it answers (when it is one
    a target may carry: an integer from 0 to 2^53 - 1)."""
    try:
        raw, _ = load(payload)
    except Malformed:
        return None
    return raw_version(raw)


def decide(
    payload: bytes,
    current: Target | None,
    now: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    highest: int | None = None,
    admission: Admission | None = None,
    max_services: int = DEFAULT_MAX_SERVICES,
) -> Decision:
    """`highest`: the highest version ever accepted (the current target's when not given), so
    a versionless target in between never lets an old version back in. `admission`: the
    device's signature and policy demands (403), checked before the version rules. Never
    raises."""
    if len(payload) > max_bytes:
        message = f"payload of {len(payload)} bytes exceeds the limit of {max_bytes} bytes"
        return _reject(413, now, [FieldError("$", message)])
    if not payload.strip():
        return Decision(Ack(None, False, NO_TARGET, iso(now)), None)
    if admission is not None:
        opened = admission.open(payload, now)
        if opened.payload is None:
            return _reject(opened.code, now, opened.errors, opened.version)
        payload = opened.payload
    decoded, version = read_target(payload, max_services)
    if isinstance(decoded, list):
        return _reject(400, now, decoded, version)
    denied = admission.violations(decoded) if admission is not None else []
    if denied:
        return _reject(FORBIDDEN, now, denied, decoded.version)
    if highest is None and current is not None:
        highest = current.version
    return _against(decoded, current, highest, now)


def _against(target: Target, current: Target | None, highest: int | None, now: float) -> Decision:
    """The version rules: lower is stale (409), equal is an idempotent replay."""
    version = target.version
    accepted = Ack(version, True, 200, iso(now))
    if version is not None and highest is not None:
        if version < highest:
            message = f"version {version} is lower than the accepted version {highest}"
            return _reject(409, now, [FieldError("$.version", message)], version)
        if version == highest:
            if current is not None and current.version == version:
                return Decision(accepted, None)
            message = f"version {version} was accepted before; a newer target needs a higher one"
            return _reject(409, now, [FieldError("$.version", message)], version)
    return Decision(accepted, None if target == current else target)
