"""Whether a received target is taken: size limit, decoding, version rules and the ack."""

from __future__ import annotations

from fleet_agent.intake import DEFAULT_MAX_BYTES, NO_TARGET, Decision, decide, not_persisted
from fleet_agent.model import Ack, FieldError, Target
from fleet_agent.validate import decode_target

from .factories import T0, encode, target_doc

RECEIVED = "2025-10-24T10:15:00.000Z"


def decoded(version: int | None = 7, **fields: object) -> Target:
    result = decode_target(encode(target_doc(version, **fields)))
    assert isinstance(result, Target)
    return result


def test_a_new_valid_target_is_accepted_and_handed_on() -> None:
    decision = decide(encode(target_doc(7)), None, T0)

    assert decision == Decision(Ack(7, True, 200, RECEIVED, []), decoded(7))


def test_a_payload_that_is_not_json_is_rejected_with_400_and_nothing_to_act_on() -> None:
    decision = decide(b"{not json", decoded(3), T0)

    assert decision.target is None
    assert (decision.ack.accepted, decision.ack.code, decision.ack.version) == (False, 400, None)
    assert [error.path for error in decision.ack.errors] == ["$"]


def test_a_json_array_is_rejected_with_400() -> None:
    decision = decide(b"[1, 2]", None, T0)

    assert decision == Decision(
        Ack(None, False, 400, RECEIVED, [FieldError("$", "Expected `object`, got `array`")]),
        None,
    )


def test_a_schema_error_is_rejected_with_400_and_names_the_version_it_answers() -> None:
    decision = decide(encode(target_doc(8, imageName="Bad Image")), decoded(7), T0)

    assert decision == Decision(
        Ack(
            8,
            False,
            400,
            RECEIVED,
            [FieldError("$.apps.1001.services[0].imageName", "invalid reference format")],
        ),
        None,
    )


def test_a_rejected_payload_with_a_non_integer_version_acks_no_version() -> None:
    decision = decide(b'{"version": true, "apps": {}}', None, T0)

    assert (decision.ack.code, decision.ack.version) == (400, None)


def test_a_payload_over_the_size_limit_is_rejected_with_413_before_decoding() -> None:
    payload = b"{" + b" " * 100 + b"}"

    decision = decide(payload, None, T0, max_bytes=50)

    assert decision == Decision(
        Ack(
            None,
            False,
            413,
            RECEIVED,
            [FieldError("$", "payload of 102 bytes exceeds the limit of 50 bytes")],
        ),
        None,
    )


def test_the_default_size_limit_is_256_kib_inclusive() -> None:
    body = encode(target_doc(1))
    at_limit = body + b" " * (DEFAULT_MAX_BYTES - len(body))
    over = at_limit + b" "

    assert DEFAULT_MAX_BYTES == 262144
    assert decide(at_limit, None, T0).ack.code == 200
    assert decide(over, None, T0).ack.code == 413


def test_a_lower_version_is_rejected_with_409_and_changes_nothing() -> None:
    decision = decide(encode(target_doc(6, imageName="other:1")), decoded(7), T0)

    assert decision == Decision(
        Ack(
            6,
            False,
            409,
            RECEIVED,
            [FieldError("$.version", "version 6 is lower than the accepted version 7")],
        ),
        None,
    )


def test_an_equal_version_is_an_accepted_replay_with_nothing_to_act_on() -> None:
    decision = decide(encode(target_doc(7)), decoded(7), T0)

    assert decision == Decision(Ack(7, True, 200, RECEIVED, []), None)


def test_an_equal_version_with_other_content_is_still_only_a_replay() -> None:
    decision = decide(encode(target_doc(7, imageName="other:1")), decoded(7), T0)

    assert decision == Decision(Ack(7, True, 200, RECEIVED, []), None)


def test_a_higher_version_is_accepted_and_handed_on() -> None:
    decision = decide(encode(target_doc(8, imageName="other:1")), decoded(7), T0)

    assert decision.ack == Ack(8, True, 200, RECEIVED, [])
    assert decision.target == decoded(8, imageName="other:1")


def test_targets_without_versions_are_compared_by_content() -> None:
    current = decoded(None)

    replay = decide(encode(target_doc(None)), current, T0)
    changed = decide(encode(target_doc(None, imageName="other:1")), current, T0)

    assert replay == Decision(Ack(None, True, 200, RECEIVED, []), None)
    assert changed.ack == Ack(None, True, 200, RECEIVED, [])
    assert changed.target == decoded(None, imageName="other:1")


def test_a_target_without_a_version_after_a_versioned_one_is_accepted() -> None:
    decision = decide(encode(target_doc(None, imageName="other:1")), decoded(7), T0)

    assert decision.ack.code == 200
    assert decision.target == decoded(None, imageName="other:1")


def test_a_versioned_target_after_an_unversioned_one_is_accepted() -> None:
    decision = decide(encode(target_doc(1)), decoded(None), T0)

    assert decision.ack == Ack(1, True, 200, RECEIVED, [])
    assert decision.target == decoded(1)


def test_an_identical_unversioned_replay_after_reordered_keys_is_still_a_replay() -> None:
    current = decoded(None)
    reordered = b'{"apps": {"1001": {"services": [{"imageName": "nodered/node-red:latest", '
    reordered += b'"config": {"restart": "unless-stopped", "ports": ["1880:1880"]}, '
    reordered += b'"serviceName": "nodered", "serviceId": 1}], '
    reordered += b'"appName": "test-error-handling", "appId": 1001}}}'

    assert decide(reordered, current, T0) == Decision(Ack(None, True, 200, RECEIVED, []), None)


def test_an_explicit_empty_target_is_accepted_and_acted_on() -> None:
    decision = decide(b'{"version": 8, "apps": {}}', decoded(7), T0)

    assert decision.ack.code == 200
    assert decision.target == Target(apps={}, version=8)


def test_an_empty_payload_means_no_target_and_touches_nothing() -> None:
    current = decoded(7)

    for payload in (b"", b"  \n\t"):
        assert decide(payload, current, T0) == Decision(
            Ack(None, False, NO_TARGET, RECEIVED, []), None
        )
    assert NO_TARGET == 204


def test_a_target_the_device_cannot_store_is_answered_500_naming_the_reason() -> None:
    ack = not_persisted(encode(target_doc(9)), T0, "No space left on device")

    assert (ack.version, ack.accepted, ack.code) == (9, False, 500)
    assert [(e.path, e.message) for e in ack.errors] == [
        (
            "$",
            "the target could not be stored on the device, so it is not taken: "
            "No space left on device",
        )
    ]
