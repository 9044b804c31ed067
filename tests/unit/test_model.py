"""Small pure helpers of the wire types: timestamps, app lists, service names."""

from __future__ import annotations

import msgspec

from fleet_agent.model import Ack, App, FieldError, Target, iso

from .factories import T0, desired


def test_timestamps_are_iso_8601_utc_with_milliseconds_and_z() -> None:
    assert iso(T0) == "2025-10-24T10:15:00.000Z"
    assert iso(T0 + 80) == "2025-10-24T10:16:20.000Z"
    assert iso(T0 + 0.012) == "2025-10-24T10:15:00.012Z"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z"


def test_timestamps_truncate_below_a_millisecond() -> None:
    assert iso(T0 + 0.0129) == "2025-10-24T10:15:00.012Z"


def test_apps_are_listed_alike_from_an_object_or_a_list() -> None:
    one, two = App(1, "one"), App(2, "two")

    assert Target({"1": one, "2": two}).app_list() == [one, two]
    assert Target([one, two]).app_list() == [one, two]


def test_a_desired_service_is_named_after_its_service() -> None:
    assert desired("broker").name == "broker"


def test_an_ack_is_encoded_in_camel_case_as_the_contract_shows() -> None:
    ack = Ack(7, False, 400, "2025-10-24T10:15:00.000Z", [FieldError("$.apps", "bad")])

    assert msgspec.json.decode(msgspec.json.encode(ack)) == {
        "version": 7,
        "accepted": False,
        "code": 400,
        "receivedAt": "2025-10-24T10:15:00.000Z",
        "errors": [{"path": "$.apps", "message": "bad"}],
    }
