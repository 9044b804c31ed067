"""Signed targets and Home Assistant discovery payloads are read within the same bounds as
plain targets: deep nesting and repeated keys are answered, never raised, never lost."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet_agent import hass
from fleet_agent.admission import Admission
from fleet_agent.intake import decide
from fleet_agent.operator.keys import generate
from fleet_agent.signing import ALGORITHM, Trust, load_trust

from .factories import T0

DEVICE = "dev-001"
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, Any], dict[str, Any]]:
    return generate("cloud-1")


@pytest.fixture
def trust(pair: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path) -> Trust:
    path = tmp_path / "keys.jwks"
    path.write_bytes(msgspec.json.encode({"keys": [pair[1]]}))
    loaded = load_trust(path, required=True)
    assert loaded is not None
    return loaded


def sign_raw(payload: bytes, private: dict[str, Any]) -> bytes:
    """A JWS over exactly these bytes (the operator's `sign` re-encodes a document)."""
    from joserfc import jws  # noqa: PLC0415
    from joserfc.errors import SecurityWarning  # noqa: PLC0415
    from joserfc.jwk import OKPKey  # noqa: PLC0415

    header = {"alg": ALGORITHM, "kid": private["kid"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        key = OKPKey.import_key(private)
        token = jws.serialize_compact(header, payload, key, algorithms=[ALGORITHM])
    return token.encode()


def answer(payload: bytes, trust: Trust) -> tuple[int, list[tuple[str, str]]]:
    ack = decide(payload, None, T0, admission=Admission(DEVICE, trust=trust)).ack
    return ack.code, [(e.path, e.message) for e in ack.errors]


def test_a_jws_whose_header_nests_5000_levels_is_refused_not_raised(trust: Trust) -> None:
    header = base64.urlsafe_b64encode(b'{"alg": ' + DEEP + b"}").rstrip(b"=")

    assert answer(header + b".e30.c2ln", trust) == (
        403,
        [("$", "bad signature: the JWS header is unreadable")],
    )


def test_a_validly_signed_payload_nested_too_deeply_is_a_400(
    pair: tuple[dict[str, Any], dict[str, Any]], trust: Trust
) -> None:
    token = sign_raw(b'{"version": 1, "deviceId": "dev-001", "apps": ' + DEEP + b"}", pair[0])

    assert answer(token, trust) == (400, [("$", "invalid JSON: nested deeper than 32 levels")])


def test_a_key_repeated_in_a_signed_payload_is_a_400_not_silently_the_last(
    pair: tuple[dict[str, Any], dict[str, Any]], trust: Trust
) -> None:
    payload = b'{"version": 1, "deviceId": "dev-001", "apps": {}, "apps": {"1": {"appId": 1}}}'

    assert answer(sign_raw(payload, pair[0]), trust) == (400, [("$.apps", "duplicate key")])


def test_a_signed_version_beyond_2_to_the_53_is_rejected_naming_no_version(
    pair: tuple[dict[str, Any], dict[str, Any]], trust: Trust
) -> None:
    payload = b'{"version": 1' + b"0" * 30 + b', "deviceId": "dev-001", "apps": {}}'
    ack = decide(sign_raw(payload, pair[0]), None, T0, admission=Admission(DEVICE, trust=trust)).ack

    assert (ack.code, ack.version, [e.path for e in ack.errors]) == (400, None, ["$.version"])


def test_a_deep_home_assistant_discovery_payload_announces_nothing() -> None:
    assert hass.announced_services(b'{"cmps": ' + DEEP + b"}") == set()
