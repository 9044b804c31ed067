"""The config keys that reach into the host (devices, capabilities, user, limits): their grammar.

IoT services need serial ports, GPIO, a capability or two and resource limits. This module says
what a well-formed value is, and turns values into what the engine wants (bytes, nano-CPUs,
`CAP_`-less names), so validation, the config hash, the device policy and the container spec all
read them the same way. Pure: no engine, no file system.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from fleet_agent.model import FieldError

_MEMORY = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[bkmg]?)b?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024 * 1024  # the engine refuses less
_CAPABILITY = re.compile(r"(CAP_)?[A-Z][A-Z_]*", re.IGNORECASE)
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?")
_PERMISSIONS = re.compile(r"[rwm]{1,3}")


class DeviceMapping(NamedTuple):
    host: str
    container: str
    permissions: str


def memory_bytes(value: int | str) -> int:
    """`268435456`, `"256m"`, `"1g"`, `"512MB"` in bytes; ValueError when unreadable."""
    if isinstance(value, int):
        return value
    match = _MEMORY.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid memory limit {value!r}: use bytes or a number with b, k, m, g")
    return int(float(match["amount"]) * _UNITS[match["unit"].lower()])


def nano_cpus(cpus: float) -> int:
    return round(cpus * 1e9)


def capability(name: str) -> str:
    """The engine's spelling: upper case, without `CAP_` (`net_admin` -> `NET_ADMIN`)."""
    upper = name.upper()
    return upper.removeprefix("CAP_")


def device_mapping(text: str) -> DeviceMapping:
    """`/dev/ttyUSB0`, `/dev/ttyUSB0:/dev/ttyS0` or `/dev/ttyUSB0:/dev/ttyS0:rw`."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not all(p.startswith("/") for p in parts[:2]):
        raise ValueError(f"invalid device {text!r}: use /dev/HOST[:/dev/CONTAINER[:rwm]]")
    permissions = parts[2] if len(parts) == 3 else "rwm"
    if not _PERMISSIONS.fullmatch(permissions):
        raise ValueError(f"invalid device permissions {permissions!r}: use r, w and m")
    return DeviceMapping(parts[0], parts[1] if len(parts) > 1 else parts[0], permissions)


def config_errors(config: dict[str, Any], path: str) -> Iterator[FieldError]:
    """Grammar errors of the host keys in a raw service config (types are checked elsewhere)."""
    devices = config.get("devices")
    for index, device in enumerate(devices if isinstance(devices, list) else []):
        if isinstance(device, str):
            try:
                device_mapping(device)
            except ValueError as exc:
                yield FieldError(f"{path}.devices[{index}]", str(exc))
    caps = config.get("capAdd")
    for index, cap in enumerate(caps if isinstance(caps, list) else []):
        if isinstance(cap, str) and not _CAPABILITY.fullmatch(cap):
            yield FieldError(f"{path}.capAdd[{index}]", f"invalid capability {cap!r}")
    user = config.get("user")
    if isinstance(user, str) and not _USER.fullmatch(user):
        yield FieldError(f"{path}.user", f"invalid user {user!r}: use NAME, UID or UID:GID")
    memory = config.get("memLimit")
    if isinstance(memory, int | str) and not isinstance(memory, bool):
        yield from _memory_errors(memory, f"{path}.memLimit")


def _memory_errors(value: int | str, path: str) -> Iterator[FieldError]:
    try:
        amount = memory_bytes(value)
    except ValueError as exc:
        yield FieldError(path, str(exc))
        return
    if amount < MIN_MEMORY:
        yield FieldError(path, f"memory limit {value!r} is below the engine's minimum of 6m")
