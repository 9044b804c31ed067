"""How the Docker adapter words what the SDK and the transport raise, and its own bookkeeping
(no engine needed)."""

from __future__ import annotations

import docker.errors
import pytest
import requests
import urllib3.exceptions

from fleet_agent.engine import EngineError, OwnStops, _translated


def _raised(exc: BaseException, **options: str) -> EngineError:
    with pytest.raises(EngineError) as caught, _translated(**options):  # type: ignore[arg-type]
        raise exc
    return caught.value


def test_a_stream_read_timeout_from_urllib3_is_a_pull_timeout_with_our_words() -> None:
    stalled = urllib3.exceptions.ReadTimeoutError(None, "/images/create", "Read timed out.")  # type: ignore[arg-type]

    error = _raised(
        stalled, timeout_kind="timeout", timeout_message="pull stalled: no progress for 3s"
    )

    assert (error.kind, error.message) == ("timeout", "pull stalled: no progress for 3s")


def test_a_broken_stream_is_an_unreachable_engine() -> None:
    error = _raised(urllib3.exceptions.ProtocolError("Connection broken"))

    assert error.kind == "unavailable"
    assert "Connection broken" in error.message


def test_an_engine_answering_too_slowly_is_a_timeout_of_that_call_not_an_outage() -> None:
    error = _raised(requests.exceptions.ReadTimeout("read timed out"))

    assert (error.kind, error.message) == ("timeout", "engine did not answer in time")


def test_a_refused_socket_is_an_unreachable_engine() -> None:
    assert _raised(requests.exceptions.ConnectionError("refused")).kind == "unavailable"


def test_a_missing_manifest_keeps_the_engines_own_message() -> None:
    response = requests.Response()
    response.status_code = 404
    missing = docker.errors.NotFound("404", response, explanation="manifest unknown")

    error = _raised(missing)

    assert (error.kind, error.message) == ("not_found", "manifest unknown")


def test_an_invalid_reference_refused_by_the_engine_is_its_own_kind() -> None:
    response = requests.Response()
    response.status_code = 400
    refused = docker.errors.APIError("400", response, explanation="invalid reference format")

    assert _raised(refused).kind == "invalid_reference"


def test_an_answer_cut_off_by_an_engine_going_away_is_an_unreachable_engine() -> None:
    broken = urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
    error = _raised(requests.exceptions.ChunkedEncodingError(broken))

    assert error.kind == "unavailable"
    assert "IncompleteRead" in error.message


def test_any_other_transport_error_is_a_failed_call_never_a_raw_exception() -> None:
    error = _raised(requests.exceptions.InvalidURL("bad url"))

    assert (error.kind, error.message) == ("failed", "bad url")


def test_a_container_the_agent_removed_stays_its_own_for_events_after_the_list_drops_it() -> None:
    own = OwnStops(memory=60.0)
    own.add("c1", now=100.0)

    own.keep_listed(set(), now=100.1)  # listed right after the remove: gone already
    kept = "c1" in own
    own.keep_listed(set(), now=161.0)

    assert kept
    assert "c1" not in own


def test_a_container_still_listed_stays_the_agents_own_however_long_it_takes() -> None:
    own = OwnStops(memory=60.0)
    own.add("c1", now=0.0)

    own.keep_listed({"c1"}, now=1000.0)

    assert "c1" in own
