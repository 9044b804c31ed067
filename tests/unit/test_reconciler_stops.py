"""Stops by hand through a reconcile pass, with a scripted engine and an injected clock.

The engine reports `kill` (and, for `docker stop`, later `stop`) when the signal is sent, and
`die` a moment before its list says `exited`: a pass kicked by those events may still list the
container as running.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from msgspec.structs import replace

from fleet_agent.config import Settings
from fleet_agent.engine import ContainerEvent, Engine
from fleet_agent.model import RestartPolicy, ServiceStatus
from fleet_agent.reconciler import Reconciler
from fleet_agent.runtime import Container, ExitDetails
from fleet_agent.spec import desired_services

from .factories import DEVICE, T0, container, service, target

KILLED = 137


class ScriptedEngine:
    """Lists what the test says; a start makes the container run again."""

    def __init__(self) -> None:
        self.listed: list[Container] = []
        self.started: list[str] = []

    def list_managed(self) -> list[Container]:
        return list(self.listed)

    def exit_details(self, container: str, tail: int = 5) -> ExitDetails:
        listed = next(c for c in self.listed if c.id == container)
        return ExitDetails(listed.exit_code if listed.exit_code is not None else -1)

    def start(self, container: str) -> None:
        self.started.append(container)
        self.listed = [
            replace(c, state="running", exit_code=None) if c.id == container else c
            for c in self.listed
        ]


class Harness:
    def __init__(self, state_dir: Path, restart: RestartPolicy) -> None:
        self.now = T0
        self.engine = ScriptedEngine()
        wanted = target(service(restart=restart), version=7)
        self.desired = desired_services(wanted)[0]
        settings = Settings(device_id=DEVICE, state_dir=str(state_dir))
        self.reconciler = Reconciler(
            settings,
            cast(Engine, self.engine),
            lambda: wanted,
            [],
            lambda: None,
            lambda: self.now,
        )

    def list(self, state: str, exit_code: int | None = None) -> None:
        self.engine.listed = [container(self.desired, "c-1", state=state, exit_code=exit_code)]

    def pass_at(self, now: float) -> ServiceStatus:
        self.now = now
        self.reconciler.run_pass()
        report = self.reconciler.last_report
        assert report is not None
        return report.services[0]

    def event(self, action: str, at: float) -> None:
        self.now = at
        self.reconciler.note_event(ContainerEvent(action, "c-1", by_agent=False))


@pytest.fixture
def unless_stopped(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, "unless-stopped")
    yield harness
    harness.reconciler.close()


@pytest.fixture
def always(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, "always")
    yield harness
    harness.reconciler.close()


def test_a_kill_by_hand_seen_after_the_exit_keeps_an_unless_stopped_container_stopped(
    unless_stopped: Harness,
) -> None:
    h = unless_stopped
    h.list("running")
    assert h.pass_at(T0).service_status == "running"

    h.event("kill", T0 + 1)
    h.event("die", T0 + 1.01)
    h.list("exited", KILLED)
    shown = h.pass_at(T0 + 1.02)

    assert (shown.service_status, shown.error, shown.exit_code) == ("stopped", None, KILLED)
    assert h.pass_at(T0 + 60).service_status == "stopped"
    assert h.engine.started == []


def test_a_kill_by_hand_under_always_is_restarted_in_the_same_pass_free_of_charge(
    always: Harness,
) -> None:
    h = always
    h.list("running")
    h.pass_at(T0)

    h.event("kill", T0 + 1)
    h.list("exited", KILLED)
    shown = h.pass_at(T0 + 1.02)

    assert h.engine.started == ["c-1"]
    assert (shown.service_status, shown.error, shown.restart_count) == ("running", None, 1)
    assert h.reconciler.runtimes["nodered"].crash.failures == 0


def test_a_kill_by_hand_is_still_remembered_when_a_pass_lists_the_container_mid_shutdown(
    unless_stopped: Harness,
) -> None:
    # The `kill` event comes when the signal is sent, and the pass it kicks (or the one `die`
    # kicks, before the list says `exited`) still lists the container as running; the mark must
    # survive that, since `docker kill` sends no later `stop` event to put it back.
    h = unless_stopped
    h.list("running")
    h.pass_at(T0)

    h.event("kill", T0 + 1)
    h.pass_at(T0 + 1.01)  # kicked by `kill`: the container has not exited yet
    assert "c-1" in h.reconciler.manual_stops

    h.event("die", T0 + 1.2)
    h.list("exited", KILLED)
    shown = h.pass_at(T0 + 1.21)

    assert (shown.service_status, shown.error) == ("stopped", None)
    assert h.pass_at(T0 + 60).service_status == "stopped"
    assert h.engine.started == []
