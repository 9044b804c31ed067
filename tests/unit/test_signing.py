"""Signed targets: only a valid signature of a trusted key, for this device, in time, is taken."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet_agent import signing
from fleet_agent.admission import Admission
from fleet_agent.intake import decide
from fleet_agent.model import Target
from fleet_agent.operator.keys import generate, sign
from fleet_agent.signing import SigningError, Trust, load_trust
from fleet_agent.validate import decode_target

from .factories import T0, encode, target_doc

DEVICE = "dev-001"


@pytest.fixture(scope="module")
def pairs() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    return {kid: generate(kid) for kid in ("cloud-1", "cloud-2", "rogue")}


@pytest.fixture
def trust(pairs: dict[str, Any], tmp_path: Path) -> Trust:
    path = tmp_path / "keys.jwks"
    path.write_bytes(msgspec.json.encode({"keys": [pairs["cloud-1"][1], pairs["cloud-2"][1]]}))
    loaded = load_trust(path, required=True)
    assert loaded is not None
    return loaded


def signed(pairs: dict[str, Any], version: int, kid: str = "cloud-1", **kw: Any) -> bytes:
    device = kw.pop("device", DEVICE)
    return sign(target_doc(version), pairs[kid][0], device, kw.pop("exp", None)).encode()


def offer(payload: bytes, trust: Trust | None, current: Target | None = None) -> tuple[int, Any]:
    decision = decide(payload, current, T0, admission=Admission(DEVICE, trust=trust))
    return decision.ack.code, [(e.path, e.message) for e in decision.ack.errors]


def target_at(version: int) -> Target:
    result = decode_target(encode(target_doc(version)))
    assert isinstance(result, Target)
    return result


def test_a_valid_signature_of_any_trusted_key_is_taken_as_the_plain_target(
    pairs: dict[str, Any], trust: Trust
) -> None:
    for kid in ("cloud-1", "cloud-2"):  # rotation: both keys of the set are trusted
        decision = decide(signed(pairs, 7, kid), None, T0, admission=Admission(DEVICE, trust=trust))
        assert decision.ack.code == 200 and decision.target == target_at(7)


def test_a_signature_of_an_untrusted_key_is_refused_with_403(
    pairs: dict[str, Any], trust: Trust
) -> None:
    code, errors = offer(signed(pairs, 7, "rogue"), trust)

    assert code == 403 and errors == [("$", "bad signature: kid 'rogue' is not a trusted key")]


def test_a_forged_kid_does_not_help_a_wrong_key(pairs: dict[str, Any], trust: Trust) -> None:
    rogue = dict(pairs["rogue"][0], kid="cloud-1")
    token = sign(target_doc(7), rogue, DEVICE, None).encode()

    code, errors = offer(token, trust)

    assert code == 403 and "does not verify" in errors[0][1]


def _tamper(token: bytes, change: dict[str, Any]) -> bytes:
    header, payload, signature = token.split(b".")
    claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    claims.update(change)
    forged = base64.urlsafe_b64encode(msgspec.json.encode(claims)).rstrip(b"=")
    return b".".join([header, forged, signature])


def test_a_tampered_payload_is_refused(pairs: dict[str, Any], trust: Trust) -> None:
    code, errors = offer(_tamper(signed(pairs, 7), {"version": 8}), trust)

    assert code == 403 and errors[0][0] == "$" and "does not verify" in errors[0][1]


def test_a_target_signed_for_another_device_is_refused(pairs: dict[str, Any], trust: Trust) -> None:
    code, errors = offer(signed(pairs, 7, device="dev-002"), trust)

    assert code == 403 and errors[0][0] == "$.deviceId"


def test_a_replayed_older_signed_target_is_stale_and_an_expired_one_forbidden(
    pairs: dict[str, Any], trust: Trust
) -> None:
    assert offer(signed(pairs, 6), trust, target_at(7))[0] == 409
    assert offer(signed(pairs, 8, exp=T0 - 1), trust, target_at(7))[0] == 403
    assert offer(signed(pairs, 6, exp=T0 - 1), trust, target_at(7)) == (
        403,
        [("$.exp", f"the signed target expired at {int(T0 - 1)}")],
    )
    assert offer(signed(pairs, 8, exp=T0 + 60), trust, target_at(7))[0] == 200


def test_unsigned_targets_are_refused_when_signatures_are_required(trust: Trust) -> None:
    code, errors = offer(encode(target_doc(7)), trust)

    assert code == 403 and "unsigned target refused" in errors[0][1]
    assert offer(encode(target_doc(7)), Trust(trust.keys, required=False))[0] == 200


def test_a_signed_target_without_keys_or_without_a_version_is_refused(
    pairs: dict[str, Any], trust: Trust
) -> None:
    assert offer(signed(pairs, 7), None)[0] == 403
    token = _tamper(signed(pairs, 7), {})  # same claims: still verifies
    assert offer(token, trust)[0] == 200
    with pytest.raises(Exception, match="version"):
        sign({"apps": {}}, pairs["cloud-1"][0], DEVICE, None)


@pytest.mark.parametrize(
    "payload",
    [b"a.b.c", b"eyJhbGciOiJub25lIn0.e30.", b"!!.??.**", b"eyJ9.eyJ9.eyJ9", b"." * 3],
)
def test_garbage_in_jws_shape_is_answered_not_raised(payload: bytes, trust: Trust) -> None:
    code, _ = offer(payload, trust)

    assert code in (400, 403)


def test_trusted_key_files_that_are_wrong_say_why(tmp_path: Path, pairs: dict[str, Any]) -> None:
    cases = {
        "empty.jwks": b'{"keys": []}',
        "junk.jwks": b"{",
        "nokid.jwks": msgspec.json.encode({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "a"}]}),
        "rsa.jwks": msgspec.json.encode({"keys": [{"kty": "RSA", "kid": "r", "n": "a", "e": "b"}]}),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SigningError, match=name):
            load_trust(tmp_path / name, required=False)
    with pytest.raises(SigningError, match="no trusted keys"):
        load_trust(None, required=True)
    assert load_trust(None, required=False) is None


def test_a_private_key_in_the_trusted_set_is_used_for_its_public_part_only(
    tmp_path: Path, pairs: dict[str, Any]
) -> None:
    path = tmp_path / "keys.jwks"
    path.write_bytes(msgspec.json.encode({"keys": [pairs["cloud-1"][0]]}))
    trust = load_trust(path, required=True)

    assert trust is not None and not trust.keys["cloud-1"].is_private
    assert signing.looks_signed(signed(pairs, 1)) and not signing.looks_signed(b"{}")
