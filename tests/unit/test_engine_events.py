"""Engine events in our own words: which of them mean someone stopped a container by hand."""

from __future__ import annotations

import pytest

from fleet_agent.engine import ContainerEvent


@pytest.mark.parametrize("action", ["stop", "kill"])
def test_a_stop_or_kill_not_made_by_the_agent_is_a_stop_by_hand(action: str) -> None:
    assert ContainerEvent(action, "c-1", by_agent=False).manual_stop is True


@pytest.mark.parametrize("action", ["stop", "kill"])
def test_a_stop_or_kill_made_by_the_agent_is_not_a_stop_by_hand(action: str) -> None:
    assert ContainerEvent(action, "c-1", by_agent=True).manual_stop is False


@pytest.mark.parametrize("action", ["die", "oom", "start", "destroy", "pause", "restart", ""])
@pytest.mark.parametrize("by_agent", [False, True])
def test_an_exit_of_its_own_or_any_other_action_is_not_a_stop_by_hand(
    action: str, by_agent: bool
) -> None:
    assert ContainerEvent(action, "c-1", by_agent).manual_stop is False
