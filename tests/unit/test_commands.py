"""Commands from the cloud: which action each one runs, its result and the echoed requestId."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from fleet_agent.commands import CommandResult, execute


class Actions:
    """The agent's two actions, recording their calls; `retry` answers `retried`."""

    def __init__(self, retried: list[str] | None = None) -> None:
        self.known = {"nodered", "mosquitto"}
        self.retried = ["nodered"] if retried is None else retried
        self.retry_calls: list[list[str]] = []
        self.reconciles = 0

    def retry(self, services: Iterable[str]) -> list[str]:
        self.retry_calls.append(list(services))
        return self.retried

    def reconcile(self) -> None:
        self.reconciles += 1

    def names(self) -> set[str]:
        return set(self.known)

    def run(self, name: str, payload: bytes) -> CommandResult:
        return execute(name, payload, self.retry, self.reconcile, self.names)


def test_retry_of_a_known_service_retries_just_that_service_and_lists_it() -> None:
    actions = Actions()

    result = actions.run("retry", b'{"service": "nodered", "requestId": "r-1"}')

    assert result == CommandResult("retry", True, "r-1", services=["nodered"])
    assert (actions.retry_calls, actions.reconciles) == ([["nodered"]], 0)


def test_retry_without_a_service_retries_every_service_in_error() -> None:
    actions = Actions(retried=["mosquitto", "nodered"])

    result = actions.run("retry", b"{}")

    assert result == CommandResult("retry", True, None, services=["mosquitto", "nodered"])
    assert actions.retry_calls == [[]]


def test_retry_with_a_null_service_also_retries_every_service_in_error() -> None:
    actions = Actions(retried=[])

    result = actions.run("retry", b'{"service": null, "requestId": "r-2"}')

    assert result == CommandResult("retry", True, "r-2", services=[])
    assert actions.retry_calls == [[]]


def test_retry_of_an_unknown_service_fails_naming_it_and_retries_nothing() -> None:
    actions = Actions()

    result = actions.run("retry", b'{"service": "ghost", "requestId": "r-3"}')

    assert result == CommandResult("retry", False, "r-3", error="unknown service 'ghost'")
    assert (actions.retry_calls, actions.reconciles) == ([], 0)


def test_reconcile_runs_a_pass_and_echoes_the_request_id() -> None:
    actions = Actions()

    result = actions.run("reconcile", b'{"requestId": "r-4"}')

    assert result == CommandResult("reconcile", True, "r-4")
    assert (actions.retry_calls, actions.reconciles) == ([], 1)


@pytest.mark.parametrize("name", ["retry", "reconcile"])
def test_an_empty_payload_is_taken_as_an_empty_object(name: str) -> None:
    actions = Actions()

    result = actions.run(name, b"")

    assert (result.command, result.ok, result.request_id, result.error) == (name, True, None, None)
    assert (actions.retry_calls, actions.reconciles) == (([[]], 0) if name == "retry" else ([], 1))


def test_an_unknown_command_name_fails_runs_nothing_and_echoes_the_request_id() -> None:
    actions = Actions()

    result = actions.run("restart", b'{"requestId": "r-5"}')

    assert result == CommandResult("restart", False, "r-5", error="unknown command 'restart'")
    assert (actions.retry_calls, actions.reconciles) == ([], 0)


def test_an_unknown_field_is_rejected_runs_nothing_and_still_echoes_the_request_id() -> None:
    actions = Actions()

    result = actions.run("retry", b'{"service": "nodered", "force": true, "requestId": "r-6"}')

    assert result == CommandResult(
        "retry", False, "r-6", error="invalid command: Object contains unknown field `force`"
    )
    assert (actions.retry_calls, actions.reconciles) == ([], 0)


def test_a_payload_of_the_wrong_shape_is_invalid_and_still_echoes_its_request_id() -> None:
    actions = Actions()

    result = actions.run("reconcile", b'{"service": 5, "requestId": "r-7"}')

    assert result == CommandResult(
        "reconcile",
        False,
        "r-7",
        error="invalid command: Expected `str | null`, got `int` - at `$.service`",
    )
    assert (actions.retry_calls, actions.reconciles) == ([], 0)


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"requestId": "r-8", ',  # truncated: not JSON, so nothing to echo
        b'{"requestId": 42}',  # a request id that is not a string is not echoed
        b'["requestId", "r-9"]',
        b'"requestId"',
    ],
)
def test_an_undecodable_payload_without_a_string_request_id_is_invalid_with_no_request_id(
    payload: bytes,
) -> None:
    actions = Actions()

    result = actions.run("retry", payload)

    assert (result.command, result.ok, result.request_id, result.services) == (
        "retry",
        False,
        None,
        None,
    )
    assert result.error is not None
    assert result.error.startswith("invalid command: ")
    assert (actions.retry_calls, actions.reconciles) == ([], 0)


@pytest.mark.parametrize("levels", [1000, 30_000])
def test_a_deeply_nested_command_is_answered_invalid_not_with_a_recursion_error(
    levels: int,
) -> None:
    actions = Actions()
    payload = b'{"requestId": "r-10", "service": ' + b"[" * levels + b"]" * levels + b"}"

    result = actions.run("retry", payload)

    assert result == CommandResult(
        "retry", False, None, error="invalid command: $: invalid JSON: nested deeper than 32 levels"
    )
    assert (actions.retry_calls, actions.reconciles) == ([], 0)


def test_a_command_with_a_duplicate_key_is_invalid_naming_the_key() -> None:
    actions = Actions()

    result = actions.run("retry", b'{"service": "nodered", "service": "ghost", "requestId": "r"}')

    assert result == CommandResult(
        "retry", False, "r", error="invalid command: $.service: duplicate key"
    )
    assert actions.retry_calls == []


def test_a_command_over_the_size_limit_is_invalid_without_being_decoded() -> None:
    actions = Actions()
    payload = b'{"requestId": "r", "service": "' + b"x" * 70_000 + b'"}'

    result = actions.run("reconcile", payload)

    assert result.ok is False
    assert result.error == f"invalid command: payload of {len(payload)} bytes exceeds 65536"
    assert actions.reconciles == 0
