"""One suite of engine behaviours, run against the real Docker adapter and the simulated engine.

Every test here runs twice: on the project's private dockerd with its registry, and on
`SimEngine`. What the reconciler relies on (errors and their kinds, the engine's own messages,
list rows, exit codes, the event stream) must be the same on both, so the simulation that plays
whole fleets cannot drift away from the engine it stands for.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from fleet_agent.engine import Engine
from fleet_agent.ports import Cancel, ContainerEvent, EngineError
from fleet_agent.runtime import Container
from fleet_agent.simconfig import ExitRule, SimConfig
from fleet_agent.simengine import SimEngine
from fleet_agent.spec import (
    LABEL_CONFIG_HASH,
    LABEL_DEVICE,
    LABEL_MANAGED,
    LABEL_SERVICE,
    ContainerSpec,
)
from tests.integration.conftest import Services
from tests.integration.helpers import wait_for

EXIT_CODE, EXIT_AFTER = 3, 0.5
# Ends at once on SIGTERM (as the simulation's containers do).
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
CRASH = ["sh", "-c", f"sleep {EXIT_AFTER}; echo bye; exit {EXIT_CODE}"]


class Rig:
    """An engine under test, the device it serves, its images, and a record of its events."""

    def __init__(self, engine: Any, device: str, services: Services, by_hand: Any) -> None:
        self.engine = engine
        self.device = device
        self.image = services.image1
        self.missing = services.missing_image
        self.by_hand = by_hand  # stops a container as a person would, not through the agent
        self.seen: list[ContainerEvent] = []
        self._follower = threading.Thread(target=self._follow, daemon=True)

    def _follow(self) -> None:
        try:
            for event in self.engine.events():
                self.seen.append(event)
        except EngineError:
            pass

    def spec(self, service: str, command: list[str] = LOOP, device: str | None = None) -> Any:
        device = device or self.device
        labels = {
            LABEL_MANAGED: "true",
            LABEL_DEVICE: device,
            LABEL_SERVICE: service,
            LABEL_CONFIG_HASH: "h-" + service,
        }
        return ContainerSpec(
            name=f"fleet.{device}.{service}",
            image=self.image,
            command=command,
            entrypoint=None,
            environment=[],
            ports=[],
            binds=[],
            network_mode="none",
            labels=labels,
        )

    def running(self, service: str) -> str:
        self.engine.ensure_image(self.image, Cancel())
        container: str = self.engine.create(self.spec(service))
        self.engine.start(container)
        return container

    def row(self, container: str) -> Container | None:
        return next((c for c in self.engine.list_managed() if c.id == container), None)

    def actions(self, container: str) -> list[tuple[str, bool]]:
        return [(e.action, e.by_agent) for e in self.seen if e.container == container]


@pytest.fixture(params=["docker", "sim"])
def rig(request: pytest.FixtureRequest, services: Services, api: docker.APIClient) -> Iterator[Rig]:
    device = f"ct-{uuid.uuid4().hex[:10]}"
    engine: Any
    if request.param == "docker":
        engine = Engine(device, services.docker_host, stop_timeout=5)
        by_hand: Any = lambda c: api.stop(c, timeout=5)  # noqa: E731
    else:
        rule = ExitRule(pattern="crash*", code=EXIT_CODE, after=EXIT_AFTER)
        engine = SimEngine(device, SimConfig(fail_pulls=("*:nope",), exits=(rule,)))
        by_hand = engine.stop_by_hand
    rig = Rig(engine, device, services, by_hand)
    rig._follower.start()
    wait_for(lambda: rig.seen, timeout=10, what="the event stream connected")
    yield rig
    engine.close_events()
    for row in api.containers(all=True, filters={"label": f"{LABEL_DEVICE}={device}"}):
        api.remove_container(row["Id"], force=True, v=True)


def test_the_event_stream_opens_with_connected(rig: Rig) -> None:
    assert rig.seen[0].action == "connected"


def test_a_created_and_started_container_is_listed_running_with_its_labels(rig: Rig) -> None:
    container = rig.running("web")
    row = rig.row(container)
    assert row is not None
    assert (row.name, row.service, row.config_hash) == (f"fleet.{rig.device}.web", "web", "h-web")
    assert (row.image, row.state, row.exit_code) == (rig.image, "running", None)
    wait_for(lambda: ("start", False) in rig.actions(container), what="start event")
    assert rig.actions(container)[0] == ("create", False)


def test_a_missing_tag_fails_to_pull_with_manifest_unknown(rig: Rig) -> None:
    with pytest.raises(EngineError) as caught:
        rig.engine.ensure_image(rig.missing, Cancel())
    assert caught.value.kind == "not_found"
    # the registry's words, as dockerd 20.10 passes them on
    assert caught.value.message == (
        f"manifest for {rig.missing} not found: manifest unknown: manifest unknown"
    )


def test_creating_from_an_image_not_on_the_device_is_not_found(rig: Rig) -> None:
    spec = rig.spec("web")
    with pytest.raises(EngineError) as caught:
        rig.engine.create(type(spec)(**{**_fields(spec), "image": rig.missing}))
    assert caught.value.kind == "not_found"
    assert "No such image" in caught.value.message


def test_a_second_container_of_the_same_name_is_a_conflict(rig: Rig) -> None:
    rig.running("web")
    with pytest.raises(EngineError) as caught:
        rig.engine.create(rig.spec("web"))
    assert caught.value.kind == "conflict"
    assert "is already in use" in caught.value.message


def test_unknown_containers_are_not_found_for_every_step(rig: Rig) -> None:
    unknown = uuid.uuid4().hex
    for step in (rig.engine.start, rig.engine.stop, rig.engine.remove):
        with pytest.raises(EngineError) as caught:
            step(unknown)
        assert caught.value.kind == "not_found", step
        assert "No such container" in caught.value.message


def test_starting_a_running_and_stopping_a_stopped_container_are_no_errors(rig: Rig) -> None:
    container = rig.running("web")
    rig.engine.start(container)
    rig.engine.stop(container)
    rig.engine.stop(container)
    row = rig.row(container)
    assert row is not None and row.state == "exited" and row.exit_code is not None


def test_a_stop_by_the_agent_is_reported_as_its_own(rig: Rig) -> None:
    container = rig.running("web")
    rig.engine.stop(container)
    wait_for(lambda: ("stop", True) in rig.actions(container), what="stop event")
    actions = rig.actions(container)
    assert ("die", True) in actions
    assert not any(ContainerEvent(a, container, b).manual_stop for a, b in actions)


def test_a_stop_by_hand_is_a_manual_stop(rig: Rig) -> None:
    container = rig.running("web")
    rig.by_hand(container)
    wait_for(lambda: ("stop", False) in rig.actions(container), what="stop event")
    assert any(ContainerEvent(a, container, b).manual_stop for a, b in rig.actions(container))


def test_removing_a_running_container_destroys_it(rig: Rig) -> None:
    container = rig.running("web")
    rig.engine.remove(container)
    assert rig.row(container) is None
    wait_for(lambda: ("destroy", True) in rig.actions(container), what="destroy event")


def test_a_container_exiting_on_its_own_dies_with_its_code(rig: Rig) -> None:
    rig.engine.ensure_image(rig.image, Cancel())
    container = rig.engine.create(rig.spec("crash", CRASH))
    rig.engine.start(container)
    wait_for(lambda: ("die", False) in rig.actions(container), what="die event")
    wait_for(lambda: (r := rig.row(container)) and r.state == "exited", what="listed exited")
    row = rig.row(container)
    assert row is not None and row.exit_code == EXIT_CODE
    details = rig.engine.exit_details(container)
    assert (details.exit_code, details.oom_killed) == (EXIT_CODE, False)
    died = [e for e in rig.seen if e.container == container and e.action == "die"]
    assert [e.exit_code for e in died] == [EXIT_CODE]  # the event says it before the list


def test_a_stop_dies_with_the_code_of_its_signal_and_only_die_says_a_code(rig: Rig) -> None:
    container = rig.running("web")
    rig.engine.stop(container)
    wait_for(lambda: ("stop", True) in rig.actions(container), what="stop event")
    mine = [e for e in rig.seen if e.container == container]
    row = rig.row(container)
    assert row is not None
    assert [e.exit_code for e in mine if e.action == "die"] == [row.exit_code]
    assert all(e.exit_code is None for e in mine if e.action != "die")


def test_another_devices_containers_are_neither_listed_nor_followed(rig: Rig) -> None:
    rig.engine.ensure_image(rig.image, Cancel())
    other = rig.engine.create(rig.spec("web", device=f"{rig.device}-other"))
    rig.engine.start(other)
    mine = rig.running("own")
    wait_for(lambda: rig.actions(mine), what="an event of our own")
    assert [c.service for c in rig.engine.list_managed()] == ["own"]
    assert rig.actions(other) == []
    rig.engine.remove(other)


def _fields(spec: ContainerSpec) -> dict[str, Any]:
    return {f: getattr(spec, f) for f in spec.__struct_fields__}


def test_an_image_is_present_once_pulled_and_a_floating_tag_never_is(rig: Rig) -> None:
    assert not rig.engine.image_present(rig.missing)
    rig.engine.ensure_image(rig.image, Cancel())
    assert rig.engine.image_present(rig.image)
    assert not rig.engine.image_present(rig.image.rsplit(":", 1)[0] + ":latest")
