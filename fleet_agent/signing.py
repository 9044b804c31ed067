"""Signed targets, device side: a JWS (RFC 7515) with EdDSA/Ed25519 (RFC 8037) from a trusted key.

With signatures a broker (or anyone who can publish on it) can no longer make a device run what
it likes: only the holder of a trusted private key can. The trusted keys are a JWK Set with a
`kid` per key, so keys rotate by adding the new one, re-signing, then dropping the old one. The
signed payload is the target plus `deviceId` (this device, so a target for one device cannot be
replayed on another) and an optional `exp` (epoch seconds). Versions must grow as for unsigned
targets; the store persists the highest one accepted, so a replayed older target is refused.

The JOSE library (joserfc) is imported only when keys are configured: a device that does not
use signatures runs without it (`pip install fleet-agent[signing]` adds it).
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from pathlib import Path
from typing import Any

import msgspec

from fleet_agent.jsondoc import Malformed, load
from fleet_agent.model import MAX_SAFE_INT, FieldError

ALGORITHM = "EdDSA"
_COMPACT = re.compile(rb"\s*[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\s*")


class SigningError(Exception):
    pass


class Trust(msgspec.Struct, frozen=True):
    """The trusted public keys by `kid`, and whether unsigned targets are refused."""

    keys: dict[str, Any]  # kid -> joserfc OKPKey
    required: bool = False


class Opened(msgspec.Struct, frozen=True):
    """The outcome of opening a payload: the target JSON to decode, or why it is refused."""

    payload: bytes | None
    errors: list[FieldError] = []
    version: int | None = None
    code: int = 403  # 400 when a verified payload is not a JSON document we read


def looks_signed(payload: bytes) -> bool:
    return _COMPACT.fullmatch(payload) is not None


def load_trust(path: Path | None, required: bool) -> Trust | None:
    """The trusted keys from a JWK Set file; None when signatures are neither configured nor
    required. Any problem is a SigningError that says what is wrong."""
    if path is None:
        if required:
            raise SigningError("signatures are required but no trusted keys are configured")
        return None
    try:
        from joserfc.jwk import OKPKey  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        raise SigningError("trusted keys need joserfc: pip install 'fleet-agent[signing]'") from exc
    try:
        document = msgspec.json.decode(path.read_bytes())
        entries = document["keys"]
        keys = {str(entry["kid"]): _public_key(OKPKey, entry) for entry in entries}
    except (OSError, msgspec.DecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise SigningError(f"cannot read trusted keys {path}: {exc!r}") from exc
    if not keys:
        raise SigningError(f"trusted keys {path}: the key set is empty")
    return Trust(keys, required)


def _public_key(okp: Any, entry: dict[str, Any]) -> Any:
    if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
        raise ValueError(f"key {entry.get('kid')!r} is not an Ed25519 (OKP) key")
    public = {k: entry[k] for k in ("kty", "crv", "x", "kid")}  # never a private part
    return okp.import_key(public)


def open_payload(payload: bytes, trust: Trust | None, device_id: str, now: float) -> Opened:
    """What the target on the wire says, once its signature (when any) holds."""
    if not looks_signed(payload):
        if trust is not None and trust.required:
            return _refused("$", "unsigned target refused: this device requires signed targets")
        return Opened(payload)
    if trust is None:
        return _refused("$", "signed target, but this device has no trusted keys to verify it")
    claims = _verified(payload.strip(), trust)
    if isinstance(claims, Opened):
        return claims
    return _claims(claims, device_id, now)


def _refused(path: str, message: str, version: int | None = None) -> Opened:
    return Opened(None, [FieldError(path, message)], version)


def _header(token: bytes) -> dict[str, Any]:
    segment = token.split(b".", 1)[0]
    header, _ = load(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    return header


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 66 else text[:63] + "..."


def _verified(token: bytes, trust: Trust) -> dict[str, Any] | Opened:
    from joserfc import jws  # noqa: PLC0415 (optional dependency)
    from joserfc.errors import JoseError, SecurityWarning  # noqa: PLC0415

    try:
        header = _header(token)
    except (ValueError, binascii.Error, Malformed):
        return _refused("$", "bad signature: the JWS header is unreadable")
    if header.get("alg") != ALGORITHM:
        alg = _short(header.get("alg"))
        return _refused("$", f"bad signature: alg must be {ALGORITHM}, not {alg}")
    key = trust.keys.get(str(header.get("kid")))
    if key is None:
        kid = _short(header.get("kid"))
        return _refused("$", f"bad signature: kid {kid} is not a trusted key")
    try:
        with warnings.catch_warnings():  # joserfc prefers RFC 9864's "Ed25519"; ours is EdDSA
            warnings.simplefilter("ignore", SecurityWarning)
            verified = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
    except (JoseError, ValueError):
        return _refused("$", "bad signature: it does not verify with the trusted key")
    return _read_claims(verified.payload)


def _read_claims(payload: bytes) -> dict[str, Any] | Opened:
    """Read like an unsigned target: bounded depth, repeated keys named (both 400)."""
    try:
        claims, repeated = load(payload)
    except Malformed as exc:
        return Opened(None, [exc.error], code=400)
    if repeated:
        return Opened(None, repeated, code=400)
    if not isinstance(claims, dict):
        return _refused("$", "the signed payload must be a JSON object")
    return claims


def _claims(claims: dict[str, Any], device_id: str, now: float) -> Opened:
    given = claims.get("version")
    integer = isinstance(given, int) and not isinstance(given, bool)
    # An integer no target may carry (10^30) is left for the decoding to refuse (400).
    version = given if isinstance(given, int) and integer and 0 <= given <= MAX_SAFE_INT else None
    signed_for = claims.pop("deviceId", None)
    if signed_for != device_id:
        message = f"signed for device {_short(signed_for)}, not for this device {device_id!r}"
        return _refused("$.deviceId", message, version)
    expiry = claims.pop("exp", None)
    if expiry is not None:
        if not isinstance(expiry, int | float) or isinstance(expiry, bool):
            return _refused("$.exp", "exp must be epoch seconds", version)
        if expiry <= now:
            return _refused("$.exp", f"the signed target expired at {expiry}", version)
    if not integer:
        return _refused("$.version", "a signed target must carry a version", version)
    return Opened(msgspec.json.encode(claims), version=version)
