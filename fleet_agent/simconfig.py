"""Settings of the simulated engine, read from a `sim://` engine URL (pure: no engine here).

`DOCKER_HOST=sim://?pull_delay=0.5&fail=*:nope` selects the simulated engine
(`fleet_agent.simengine`) and says how it behaves; Settings checks the URL at load time, so a bad
parameter is a clear configuration error, not a crash later.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import msgspec

SCHEME = "sim"


class ExitRule(msgspec.Struct, frozen=True):
    """Containers whose image or service matches `pattern` exit with `code` after `after` s."""

    pattern: str
    code: int
    after: float


class SimConfig(msgspec.Struct, frozen=True):
    pull_delay: float = 0.0  # seconds a pull takes
    start_delay: float = 0.0  # seconds a start takes
    fail_pulls: tuple[str, ...] = ()  # image patterns whose pull fails: manifest unknown
    exits: tuple[ExitRule, ...] = ()
    images: tuple[str, ...] = ()  # present from the start (as if pulled before)

    @classmethod
    def from_url(cls, url: str) -> SimConfig:
        """`sim://?pull_delay=0.5&start_delay=0.05&fail=*:nope&exit=*crash*:3:0.5&image=a:1`.

        `fail` and `image` may repeat; `exit` is PATTERN:CODE:AFTER (PATTERN may hold colons)."""
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            raise ValueError(f"not a simulated engine URL: {url!r}")
        query = parse_qs(parts.query, keep_blank_values=False, strict_parsing=False)
        known = {"pull_delay", "start_delay", "fail", "exit", "image"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(f"{url!r}: unknown sim:// parameter(s) {', '.join(unknown)}")
        exits = []
        for raw in query.get("exit", []):
            pattern, _, rest = raw.rpartition(":")
            pattern, _, code = pattern.rpartition(":")
            try:
                exits.append(ExitRule(pattern, int(code), float(rest)))
            except ValueError:
                raise ValueError(f"{url!r}: exit={raw!r} must be PATTERN:CODE:SECONDS") from None
        try:
            delays = {k: float(query[k][-1]) for k in ("pull_delay", "start_delay") if k in query}
        except ValueError:
            raise ValueError(f"{url!r}: delays must be numbers of seconds") from None
        if any(d < 0 for d in delays.values()):
            raise ValueError(f"{url!r}: delays cannot be negative")
        return cls(
            fail_pulls=tuple(query.get("fail", [])),
            exits=tuple(exits),
            images=tuple(query.get("image", [])),
            **delays,
        )


def is_sim(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme == SCHEME
