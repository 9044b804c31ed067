"""Every target offered to the agent is answered, even when taking it fails in a bug of ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_agent.agent import Agent
from fleet_agent.config import Settings
from fleet_agent.intake import NOT_PERSISTED
from fleet_agent.model import Ack
from fleet_agent.report import Report

TARGET = b'{"version": 7, "apps": {}}'


class Acks:
    def __init__(self) -> None:
        self.acks: list[Ack] = []

    def publish(self, report: Report) -> None:
        pass

    def ack(self, ack: Ack) -> None:
        self.acks.append(ack)


def _agent(tmp_path: Path, acks: Acks) -> Agent:
    settings = Settings(
        device_id="dev-1", state_dir=str(tmp_path), docker_host="sim://", mqtt_url="none"
    )
    return Agent(settings, publishers=[acks])


def test_an_unexpected_error_taking_a_target_still_answers_it_with_a_500_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    acks = Acks()
    agent = _agent(tmp_path, acks)

    def broken(*_args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(agent.store, "offer", broken)
    ack = agent.offer(TARGET, "mqtt")
    assert acks.acks == [ack]
    assert (ack.accepted, ack.code, ack.version) == (False, NOT_PERSISTED, 7)
    assert "internal error" in ack.errors[0].message
    assert "KeyError('boom')" in ack.errors[0].message
    assert agent.store.current() is None
    assert "taking a target failed" in capsys.readouterr().out


def test_a_target_taken_normally_is_still_answered_once(tmp_path: Path) -> None:
    acks = Acks()
    agent = _agent(tmp_path, acks)
    ack = agent.offer(TARGET, "mqtt")
    assert acks.acks == [ack]
    assert (ack.accepted, ack.version) == (True, 7)
