"""Secrets stay secret: a service's environment values are masked in what the agent publishes.

A crashed container's last lines of output are useful in a status ("Error: cannot connect"),
but a service that prints its configuration would publish its password. So every text taken
from a container (or from the engine about it) passes through `mask` before it reaches a
status, alert, history, event, log or file: each environment value is replaced by `***`,
longest first, and the result is capped in size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from msgspec.structs import replace

from fleet_agent.outcomes import StepResult

MASK = "***"
MAX_OUTPUT = 512  # characters of container output kept in a status
MIN_SECRET = 3  # shorter values ("1", "on") would mask half of every message


TAIL_JOIN = " | "  # how the engine adapter joins a container's last lines into one text


def _forms(secret: str) -> set[str]:
    """A secret as it may appear: whole, and, when it spans lines, as the engine joins a log
    tail (each line stripped, `TAIL_JOIN` between) and line by line (a tail may cut it)."""
    lines = [line.strip() for line in secret.splitlines()]
    if len(lines) < 2:
        return {secret}
    return {secret, TAIL_JOIN.join(lines), *lines}


def mask(text: str, secrets: Iterable[str], limit: int = MAX_OUTPUT) -> str:
    """`text` with every secret replaced, at most `limit` characters (cut marked with `...`)."""
    forms = {form for s in secrets for form in _forms(s) if len(form) >= MIN_SECRET}
    for secret in sorted(forms, key=len, reverse=True):
        text = text.replace(secret, MASK)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def masked_step(result: StepResult, environments: Mapping[str, Iterable[str]]) -> StepResult:
    """A step's engine message may quote the container's environment: mask that service's."""
    secrets = environments.get(result.step.service)
    if not result.message or secrets is None:
        return result
    return replace(result, message=mask(result.message, secrets))
