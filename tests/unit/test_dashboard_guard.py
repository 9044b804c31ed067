"""Who may look at the dashboard and who may act through it (pure decisions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_agent.operator.dashboard.guard import (
    COOKIE,
    Guard,
    GuardError,
    is_loopback,
    parse_listen,
    read_token,
)


def test_loopback_addresses_and_names_are_recognised() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "example.com", "::", ""]))


def test_listen_addresses_are_parsed_or_refused_with_a_clear_message() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8080", "127.0.0.1", "host:port", ":80", "h:70000"):
        with pytest.raises(GuardError, match="HOST:PORT"):
            parse_listen(bad)


def test_listening_beyond_loopback_requires_a_token() -> None:
    with pytest.raises(GuardError, match="needs a token"):
        Guard.for_listen("0.0.0.0", None)
    assert Guard.for_listen("0.0.0.0", "s3cret-token").token == "s3cret-token"
    assert Guard.for_listen("127.0.0.1", None).token is None
    with pytest.raises(GuardError, match="at least 8"):
        Guard("short")


def test_a_token_file_is_read_stripped_and_an_empty_or_missing_one_is_an_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "t").write_text("  s3cret-token\n")
    assert read_token(tmp_path / "t") == "s3cret-token"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(GuardError, match="empty"):
        read_token(tmp_path / "empty")
    with pytest.raises(GuardError, match="cannot read"):
        read_token(tmp_path / "missing")


def test_without_a_token_anyone_on_loopback_looks_but_only_the_page_may_post() -> None:
    guard = Guard(None)
    assert guard.may_look({}, {})
    assert not guard.may_act({}, {})
    assert not guard.may_act({"x-fleet-token": "guess"}, {})
    assert guard.may_act({"x-fleet-token": guard.page_token}, {})
    assert Guard(None).page_token != guard.page_token  # random per server


def test_without_a_token_requests_must_be_addressed_to_a_loopback_name() -> None:
    guard = Guard(None)
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "localhost"):
        assert guard.host_allowed(host), host
    for host in ("evil.example:8080", "evil.example", "", "10.0.0.1:80"):
        assert not guard.host_allowed(host), host
    assert Guard("s3cret-token").host_allowed("dashboard.example:443")


def test_with_a_token_looking_needs_it_in_a_cookie_header_or_bearer_and_posting_in_the_header() -> (
    None
):
    guard = Guard("s3cret-token")
    assert not guard.may_look({}, {})
    assert not guard.may_look({}, {COOKIE: "wrong-token"})
    assert guard.may_look({}, {COOKIE: "s3cret-token"})
    assert guard.may_look({"x-fleet-token": "s3cret-token"}, {})
    assert guard.may_look({"authorization": "Bearer s3cret-token"}, {})
    assert not guard.may_act({}, {COOKIE: "s3cret-token"})  # a cookie alone never posts
    assert guard.may_act({"x-fleet-token": "s3cret-token"}, {COOKIE: "s3cret-token"})
    assert guard.login(" s3cret-token ") and not guard.login("nope") and not Guard(None).login("")
