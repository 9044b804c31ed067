"""Who may look at the dashboard and who may act through it (pure decisions, no server).

- On loopback without a token (the default), anyone on this machine may look; the `Host`
  header must name loopback too, so a web page using DNS rebinding cannot read the fleet.
- Anywhere else a token is required (`--token` or `--token-file`): a request carries it in a
  cookie (set by the login form), an `X-Fleet-Token` header or `Authorization: Bearer`.
- Every state-changing request is a POST that carries the page token in `X-Fleet-Token`. The
  page token is the configured token, or a random one per server start on loopback; it is
  written into the page, which other origins cannot read, so a foreign page cannot forge a POST.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from pathlib import Path

COOKIE = "fleet_dashboard_token"
HEADER = "x-fleet-token"
LOOPBACK_NAMES = ("localhost",)


class GuardError(Exception):
    """Bad listen address or token settings (one line for the person who started us)."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 in brackets: `[::1]:8080`) into its parts."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise GuardError(f"--listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardError(f"cannot read the token file {path}: {exc}") from exc
    if not token:
        raise GuardError(f"the token file {path} is empty")
    return token


class Guard:
    """The decisions of one server: `token` None means loopback without a token."""

    def __init__(self, token: str | None) -> None:
        if token is not None and len(token) < 8:
            raise GuardError("the token must be at least 8 characters long")
        self.token = token
        self.page_token = token or secrets.token_urlsafe(24)

    @classmethod
    def for_listen(cls, host: str, token: str | None) -> Guard:
        if token is None and not is_loopback(host):
            raise GuardError(
                f"listening on {host} (not loopback) needs a token: --token or --token-file"
            )
        return cls(token)

    def host_allowed(self, host_header: str) -> bool:
        """Without a token, only requests addressed to a loopback name (DNS rebinding)."""
        if self.token is not None:
            return True
        if host_header.startswith("["):  # [::1]:8080
            host = host_header[1:].split("]", 1)[0]
        else:
            host = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
        return is_loopback(host)

    def may_look(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        if self.token is None:
            return True
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        offered = [cookies.get(COOKIE, ""), headers.get(HEADER, ""), bearer]
        return any(self._same(value, self.token) for value in offered if value)

    def may_act(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """A POST: allowed to look, and the page token in its header."""
        return self.may_look(headers, cookies) and self._same(
            headers.get(HEADER, ""), self.page_token
        )

    def login(self, offered: str) -> bool:
        return self.token is not None and self._same(offered.strip(), self.token)

    @staticmethod
    def _same(a: str, b: str) -> bool:
        return hmac.compare_digest(a.encode(), b.encode())
