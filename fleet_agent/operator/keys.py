"""Keys and signatures for signed targets, the cloud side (`keygen` and `sign` use these).

Any JOSE library can sign targets for fleet-agent (docs/security.md shows the format); these
helpers make the usual case one command: an Ed25519 key pair as JWKs (the private key file is
created with mode 0600, the public key is added to a JWK Set, which is how keys rotate), and a
target file signed for one device as a JWS compact serialization with `alg` `EdDSA`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import msgspec

from fleet_agent.signing import ALGORITHM


class BadInput(Exception):
    """Bad input to a key command: said in one line, exit code 2."""


def generate(kid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new Ed25519 key pair as JWKs (private, public), both carrying `kid`."""
    from joserfc.jwk import OKPKey  # noqa: PLC0415 (the `signing` extra)

    key = OKPKey.generate_key("Ed25519", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return dict(key.as_dict(private=True)), dict(key.as_dict(private=False))


def sign(
    target: dict[str, Any], private_jwk: dict[str, Any], device_id: str, exp: float | None
) -> str:
    """The target signed for `device_id` (and until `exp`, epoch seconds, when given)."""
    from joserfc import jws  # noqa: PLC0415
    from joserfc.errors import SecurityWarning  # noqa: PLC0415
    from joserfc.jwk import OKPKey  # noqa: PLC0415

    if not isinstance(target.get("version"), int):
        raise BadInput("a signed target needs an integer version")
    if "kid" not in private_jwk:
        raise BadInput("the private key has no kid")
    claims = {**target, "deviceId": device_id}
    if exp is not None:
        claims["exp"] = int(exp)
    key = OKPKey.import_key(private_jwk)
    header = {"alg": ALGORITHM, "kid": private_jwk["kid"], "typ": "fleet-target+jws"}
    payload = msgspec.json.encode(claims)
    with warnings.catch_warnings():  # joserfc prefers RFC 9864's "Ed25519"; the contract EdDSA
        warnings.simplefilter("ignore", SecurityWarning)
        return jws.serialize_compact(header, payload, key, algorithms=[ALGORITHM])


def read_json(path: Path, what: str) -> Any:
    try:
        return msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise BadInput(f"cannot read {what} {path}: {exc}") from exc
