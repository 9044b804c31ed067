"""Volume strings as the engine's Linux parser reads them: `source:destination[:mode]`.

The source is an absolute host path (a bind mount) or a volume name the local driver accepts;
the destination is absolute and not `/`; the mode is a comma-separated list holding at most one
option of each kind the engine knows (ro/rw, z/Z, a propagation, nocopy, a consistency).
Propagation applies to bind mounts only and nocopy to named volumes only, as the engine says.
Which host paths a device allows is the device policy's business, not this module's.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from fleet_agent.model import FieldError

_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", re.ASCII)
# A bind or named source, an absolute destination, ro or rw: checked in one go.
_USUAL = re.compile(r"(/[^:\x00]*|[a-zA-Z0-9][a-zA-Z0-9_.-]+):(/[^:\x00]*)(?::r[ow])?", re.ASCII)
PROPAGATION = frozenset({"private", "rprivate", "slave", "rslave", "shared", "rshared"})
MODE_KINDS: dict[str, frozenset[str]] = {
    "read-write": frozenset({"ro", "rw"}),
    "label": frozenset({"z", "Z"}),
    "propagation": PROPAGATION,
    "copy": frozenset({"nocopy"}),
    "consistency": frozenset({"consistent", "cached", "delegated"}),
}


class _Invalid(ValueError):
    """A volume that is wrong; the reason is empty when it simply breaks the grammar."""


def volume_errors(volumes: list[tuple[int, str]], path: str) -> Iterator[FieldError]:
    for index, volume in volumes:
        try:
            check_volume(volume)
        except _Invalid as exc:
            reason = f": {exc}" if str(exc) else ""
            yield FieldError(f"{path}[{index}]", f"invalid volume {volume!r}{reason}")


def check_volume(volume: str) -> None:
    usual = _USUAL.fullmatch(volume)
    if usual is not None and "/." not in usual[2] and usual[2].strip("/"):
        return  # the forms nearly every volume takes, valid as they stand
    if "\x00" in volume:
        raise _Invalid("NUL in a path")
    parts = volume.split(":")
    if not 2 <= len(parts) <= 3 or not parts[0] or not parts[1].startswith("/"):
        raise _Invalid()
    source, destination = parts[0], parts[1]
    if not posixpath.normpath(destination).strip("/"):
        raise _Invalid("the destination cannot be /")
    bind = source.startswith("/")
    if not bind and not _VOLUME_NAME.fullmatch(source):
        raise _Invalid(f"invalid volume name {source!r}")
    if len(parts) == 3:
        _check_mode(parts[2], bind)


def _check_mode(mode: str, bind: bool) -> None:
    counts = dict.fromkeys(MODE_KINDS, 0)
    for option in mode.split(","):
        kind = next((k for k, options in MODE_KINDS.items() if option in options), None)
        if kind is None:
            raise _Invalid(f"unknown mode {option!r}")
        counts[kind] += 1
        if counts[kind] > 1:
            raise _Invalid(f"more than one {kind} mode in {mode!r}")
    if counts["propagation"] and not bind:
        raise _Invalid("propagation modes apply to bind mounts only")
    if counts["copy"] and bind:
        raise _Invalid("nocopy applies to named volumes only")
