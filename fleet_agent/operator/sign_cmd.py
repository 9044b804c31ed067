"""`fleet-agent sign TARGET --key K --device D`: a target signed for one device (JWS, EdDSA).

The output is the JWS compact serialization to publish, retained, on `{p}/{d}/target`. Its
payload is the target plus `deviceId` and, with `--expires-in`, `exp` (docs/mqtt-api.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fleet_agent.operator.keys import BadInput, read_json, sign


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", type=Path, help="target JSON file (with a version)")
    parser.add_argument("--key", type=Path, required=True, help="private JWK from keygen")
    parser.add_argument("--device", required=True, help="the device id the target is for")
    parser.add_argument("--expires-in", type=float, help="seconds until the signature expires")
    parser.add_argument("--out", type=Path, help="write the JWS here instead of stdout")


def _sign(args: argparse.Namespace) -> None:
    target = read_json(args.target, "target")
    if not isinstance(target, dict):
        raise BadInput(f"{args.target}: a target is a JSON object")
    key = read_json(args.key, "private key")
    if not isinstance(key, dict):
        raise BadInput(f"{args.key}: a private key is a JWK object")
    exp = time.time() + args.expires_in if args.expires_in is not None else None
    token = sign(target, key, args.device, exp)
    if args.out is None:
        print(token)
    else:
        args.out.write_text(token + "\n")


def main(args: argparse.Namespace) -> int:
    try:
        _sign(args)
    except BadInput as exc:
        print(f"fleet-agent sign: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a JWK joserfc cannot use
        print(f"fleet-agent sign: unusable key {args.key}: {exc}", file=sys.stderr)
        return 2
    return 0
