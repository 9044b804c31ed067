"""Port mappings as the engine reads them, checked by arithmetic alone.

`[ip:][host:]container[/proto]`, ranges included (`8000-8002:9000-9002`), IPv6 host IPs in
brackets. A range is never expanded: `1-65535:1-65535` costs as little as `80`, and the number
of bindings it would make counts against a cap per service, so no target can make the agent or
the engine hold tens of thousands of them. Digits are ASCII only (`int("٨٠")` is 80 in Python,
but not to the engine).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator

from fleet_agent.model import FieldError

MAX_BINDINGS = 1024  # port bindings per service, ranges counted port by port
MAX_PORT = 65535
PROTOCOLS = ("tcp", "udp", "sctp")
_NUMBER = (
    r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
)
_SINGLE_PORTS = re.compile(
    rf"(?:(?:(?:0|{_NUMBER})?:)?{_NUMBER}(?:/(?:tcp|udp|sctp))?\n)*", re.ASCII
)  # `container`, `host:container`, `:container`, each on its own line, values in 1-65535
_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?", re.ASCII)
# The forms nearly every mapping takes, parsed in one go; anything else (or anything wrong)
# goes the slow way, which says what is wrong.
_USUAL = re.compile(
    r"(?:(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?([0-9]{1,5}(?:-[0-9]{1,5})?)?:)?"
    r"([0-9]{1,5})(?:-([0-9]{1,5}))?(?:/(?:tcp|udp|sctp))?",
    re.ASCII,
)


class _Invalid(ValueError):
    """A mapping that is wrong; the reason is empty when it simply breaks the grammar."""


def port_errors(ports: list[tuple[int, str]], path: str) -> Iterator[FieldError]:
    """Each invalid mapping with its index, and the first one past the binding cap (after
    which the service's remaining mappings are not looked at: the cap already refuses it)."""
    if len(ports) <= MAX_BINDINGS:
        lines = "\n".join(mapping for _, mapping in ports) + "\n"
        if lines.count("\n") == len(ports) and _SINGLE_PORTS.fullmatch(lines):
            return  # single ports without IPs (nearly all), all checked in one go
    total = 0
    for index, mapping in ports:
        try:
            total += binding_count(mapping)
        except _Invalid as exc:
            reason = f": {exc}" if str(exc) else ""
            yield FieldError(f"{path}[{index}]", f"invalid port mapping {mapping!r}{reason}")
            continue
        if total > MAX_BINDINGS:
            message = f"{total} port bindings exceed the limit of {MAX_BINDINGS} per service"
            yield FieldError(f"{path}[{index}]", message)
            return


def binding_count(mapping: str) -> int:
    """How many bindings a mapping makes; raises _Invalid saying why it is wrong."""
    match = _USUAL.fullmatch(mapping)
    if match is None:
        return _binding_count_slowly(mapping)  # finds what is wrong, or an unusual form
    ip, host, low, high = match.groups()
    if ip is not None:
        _check_ip(ip.removeprefix("[").removesuffix("]"))
    containers = _length(int(low), int(high or low), "port", 1)
    if host:
        host_low, _, host_high = host.partition("-")
        hosts = _length(int(host_low), int(host_high or host_low), "host port", 0)
        if hosts != containers:
            raise _Invalid("ranges differ in length")
    return containers


def _binding_count_slowly(mapping: str) -> int:
    rest, slash, protocol = mapping.partition("/")
    if slash and protocol not in PROTOCOLS:
        raise _Invalid()
    host_ip, parts = _split_ip(rest)
    if host_ip is not None:
        _check_ip(host_ip)
    if len(parts) not in (1, 2):
        raise _Invalid()
    containers = _range(parts[-1], "port", 1)
    if len(parts) == 2 and parts[0]:
        hosts = _range(parts[0], "host port", 0)
        if hosts != containers:
            raise _Invalid("ranges differ in length")
    return containers


def _split_ip(rest: str) -> tuple[str | None, list[str]]:
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0 or rest[end + 1 : end + 2] != ":":
            raise _Invalid()
        return rest[1:end], rest[end + 2 :].split(":")
    parts = rest.split(":")
    if len(parts) == 3 and parts[0]:
        return parts[0], parts[1:]
    if len(parts) > 3:
        ip = ":".join(parts[:-2])
        if _is_ip(ip):
            raise _Invalid(f"an IPv6 host IP goes in brackets: [{ip}]")
        raise _Invalid()
    if len(parts) == 3:
        raise _Invalid()
    return None, parts


@functools.lru_cache(maxsize=256)
def _is_ip(text: str) -> bool:
    if "%" in text:  # a zone (fe80::1%eth0) is not a host IP the engine binds
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_ip(text: str) -> None:
    if not _is_ip(text):
        raise _Invalid(f"invalid host IP {text!r}")


def _range(text: str, what: str, lowest: int) -> int:
    """The length of `low[-high]`, both ends within bounds."""
    match = _RANGE.fullmatch(text)
    if match is None:
        raise _Invalid()
    low = int(match[1])
    return _length(low, int(match[2]) if match[2] is not None else low, what, lowest)


def _length(low: int, high: int, what: str, lowest: int) -> int:
    for port in (low, high):
        if not lowest <= port <= MAX_PORT:
            raise _Invalid(f"{what} {port} is out of range {lowest}-{MAX_PORT}")
    if high < low:
        raise _Invalid(f"range {low}-{high} is reversed")
    return high - low + 1
