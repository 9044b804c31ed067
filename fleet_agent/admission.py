"""What the device itself demands of a target before it is taken: a signature and its policy.

`intake.decide` asks an `Admission` twice: to open the payload (verify a JWS when one is sent
or required) and, once decoded, whether the target stays inside the device policy. Both answers
are refusals with code 403 and one error per problem. Pure: the host path resolver is injected.
"""

from __future__ import annotations

import msgspec

from fleet_agent import policy, signing
from fleet_agent.model import FieldError, Target

FORBIDDEN = 403


class Admission(msgspec.Struct, frozen=True):
    device_id: str
    rules: policy.Policy = policy.Policy()
    trust: signing.Trust | None = None
    state_dir: str | None = None
    resolve: policy.Resolve = policy.clean

    def open(self, payload: bytes, now: float) -> signing.Opened:
        return signing.open_payload(payload, self.trust, self.device_id, now)

    def violations(self, target: Target) -> list[FieldError]:
        ctx = policy.Context(self.device_id, self.state_dir, self.resolve)
        return policy.violations(target, self.rules, ctx)
