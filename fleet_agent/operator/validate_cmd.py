"""`fleet-agent validate FILE [--policy P]`: the device's own checks, offline, before publishing.

The file is read as `apply` reads it (JSON, YAML or a docker-compose file, see `documents`; a
signed file with `--keys` is the JWS as sent), then it runs what a device runs on a received
target (decoding, the rules, the device policy and, with `--keys`, the signature) and prints
every error with its path. Host paths
are normalised (`..`) but symlinks cannot be resolved here: the device resolves them again.
Exit code 0 when the device would take the target, 2 when it would refuse it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fleet_agent import intake, policy, signing
from fleet_agent.admission import Admission
from fleet_agent.operator import documents


def _admission(args: argparse.Namespace) -> Admission:
    rules = policy.load(args.policy) if args.policy else policy.Policy()
    trust = signing.load_trust(args.keys, args.keys is not None) if args.keys else None
    return Admission(args.device, rules, trust, args.state_dir)


def main(args: argparse.Namespace) -> int:
    try:
        admission = _admission(args)
        payload = args.file.read_bytes() if args.keys else documents.load_payload(args.file)
    except (OSError, policy.PolicyError, signing.SigningError) as exc:
        print(f"fleet-agent validate: {exc}", file=sys.stderr)
        return 2
    except documents.DocumentError as exc:
        print(f"{args.file}: invalid ({len(exc.errors)} error(s))")
        for error in exc.errors:
            print(f"  {error.path}: {error.message}")
        return 2
    decision = intake.decide(payload, None, time.time(), args.max_bytes, admission=admission)
    ack = decision.ack
    if ack.accepted:
        print(f"{args.file}: valid (version {ack.version})")
        return 0
    print(f"{args.file}: rejected with code {ack.code}")
    for error in ack.errors:
        print(f"  {error.path}: {error.message}")
    return 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="target: JSON, YAML or docker-compose (a JWS with --keys)"
    )
    parser.add_argument("--policy", type=Path, help="device policy file (default: the default)")
    parser.add_argument("--keys", type=Path, help="trusted JWK Set: verify a signed target")
    parser.add_argument("--device", default="device", help="device id the target is for")
    parser.add_argument("--state-dir", default="/var/lib/fleet-agent", help="device state dir")
    parser.add_argument("--max-bytes", type=int, default=intake.DEFAULT_MAX_BYTES)
