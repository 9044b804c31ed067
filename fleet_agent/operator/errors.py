"""The operator client's errors: each message is one line meant for a person."""

from __future__ import annotations

from fleet_agent.model import FieldError


class FleetClientError(Exception):
    """Base of every error the client raises on purpose."""


class BrokerUnreachable(FleetClientError):
    """The broker cannot be reached, refused us, or did not confirm a publish."""


class WaitTimeout(FleetClientError):
    """What was awaited (an ack, a command result, a condition) did not come in time."""


class InvalidTarget(FleetClientError):
    """The target breaks the contract's schema or rules; nothing was published."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"invalid target: {len(errors)} error(s)")
        self.errors = errors
