"""`fleet-agent keygen KID`: an Ed25519 key pair for signing targets, rotation-friendly.

The private JWK is created with mode 0600 and never overwritten; the public JWK is added to a
JWK Set (created when missing), which is the file devices trust (FLEET_AGENT_TRUSTED_KEYS). To
rotate: make a new key, ship the grown set to devices, sign with the new key, then drop the old
key from the set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from fleet_agent.operator.keys import BadInput, generate, read_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kid", help="key id, e.g. cloud-2026-12")
    parser.add_argument("--private", type=Path, default=Path("signing-key.jwk"))
    parser.add_argument(
        "--public",
        type=Path,
        default=Path("trusted-keys.jwks"),
        help="JWK Set the public key is added to (created when missing)",
    )


def _keyset(path: Path, kid: str) -> dict[str, Any]:
    if not path.exists():
        return {"keys": []}
    keyset = read_json(path, "key set")
    if not isinstance(keyset, dict) or not isinstance(keyset.get("keys"), list):
        raise BadInput(f"{path} is not a JWK Set")
    if any(isinstance(k, dict) and k.get("kid") == kid for k in keyset["keys"]):
        raise BadInput(f"{path} already holds a key with kid {kid!r}")
    return keyset


def _keygen(args: argparse.Namespace) -> None:
    if args.private.exists():
        raise BadInput(f"{args.private} exists; choose another file (keys are never overwritten)")
    keyset = _keyset(args.public, args.kid)
    private, public = generate(args.kid)
    fd = os.open(args.private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(msgspec.json.encode(private) + b"\n")
    keyset["keys"] = [*keyset["keys"], public]
    args.public.write_bytes(msgspec.json.format(msgspec.json.encode(keyset)) + b"\n")
    print(f"private key: {args.private} (keep it secret)\npublic key set: {args.public}")


def main(args: argparse.Namespace) -> int:
    try:
        _keygen(args)
    except BadInput as exc:
        print(f"fleet-agent keygen: {exc}", file=sys.stderr)
        return 2
    return 0
