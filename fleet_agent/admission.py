"""What the device itself demands of a target before it is taken: a signature and its policy.

`intake.decide` asks an `Admission` twice: to open the payload (verify a JWS when one is sent
or required) and, once decoded, whether the target stays inside the device policy. Both answers
are refusals with code 403 and one error per problem. Pure: the host path resolver is injected.
Host paths are resolved again right before each container is created (`at_create`): a symlink
changed after acceptance must not lead a bind outside the policy.
"""

from __future__ import annotations

import msgspec

from fleet_agent import policy, signing
from fleet_agent.model import FieldError, Target
from fleet_agent.spec import ContainerSpec

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

    def at_create(self, spec: ContainerSpec) -> ContainerSpec:
        """`spec` with each bind's host path resolved now and handed to the engine resolved;
        raises `policy.PolicyError` when one now lands where the policy refuses it."""
        state_dir = policy.clean(self.resolve(self.state_dir)) if self.state_dir else None
        binds = []
        for bind in spec.binds:
            source, sep, rest = bind.partition(":")
            if source.startswith("/"):
                resolved = policy.clean(self.resolve(policy.clean(source)))
                reason = policy.bind_refusal(resolved, self.rules, state_dir)
                if reason is not None:
                    why = f"bind of {source} (now resolved to {resolved}) is refused: {reason}"
                    raise policy.PolicyError(why)
                source = resolved
            binds.append(f"{source}{sep}{rest}")
        return msgspec.structs.replace(spec, binds=binds)
