"""The state dir full or read-only when a target arrives: the old target stays intact, the new
one is refused with a clear ack (500) and a device alert, nothing crashes, and once space is
back the agent takes it from memory (ack 200) without anyone publishing it again."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Services
from tests.integration.helpers import by_service, service, target
from tests.integration.invariants import World
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], check=False, capture_output=True, text=True)


@pytest.fixture
def small_state_dir(world: World) -> Iterator[Path]:
    """The agent's state dir on a tmpfs of 2 MiB of the test's own (needs root)."""
    path = world.agent.state_dir
    path.mkdir(parents=True)
    mounted = _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    return filler


def _persisted_version(folder: Path) -> int | None:
    version: int | None = json.loads((folder / "target.json").read_bytes())["target"]["version"]
    return version


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_target_that_cannot_be_stored_is_refused_then_taken_once_space_is_back(
    world: World, small_state_dir: Path, services: Services, device_id: str, fault: str
) -> None:
    world.agent.env.update(FLEET_AGENT_STORE_RETRY_INITIAL="0.2", FLEET_AGENT_STORE_RETRY_MAX="1")
    app = service("app", services.image1, 1, SLEEP)
    probe = MqttProbe("127.0.0.1", world.broker_port, device_id)
    try:
        world.add_bystander(services.image1)
        probe.publish("target", target(1, app), retain=True)
        world.agent.start(target_file=False)
        world.settle(1, {"app"})
        before = {name: rows[0]["Id"] for name, rows in by_service(world.api, device_id).items()}

        filler = _fill(small_state_dir) if fault == "full" else None
        if fault == "read-only":
            assert _mount("-o", "remount,ro", str(small_state_dir)).returncode == 0
        try:
            extra = service("extra", services.image1, 2, SLEEP)
            probe.publish("target", target(2, app, extra), retain=True)
            ack = probe.wait_json("target/ack", lambda a: a["version"] == 2)
            assert (ack["accepted"], ack["code"]) == (False, 500), ack
            assert "could not be stored" in ack["errors"][0]["message"]
            alert = probe.wait_json("alerts/_agent", lambda a: "(500)" in a["message"])
            assert alert["type"] == "TargetRejected"
            assert _persisted_version(small_state_dir) == 1  # the old target intact
            now = {name: rows[0]["Id"] for name, rows in by_service(world.api, device_id).items()}
            assert now == before  # nothing acted on the refused target
            assert world.agent.proc is not None and world.agent.proc.poll() is None
        finally:
            if filler is not None:
                filler.unlink()
            if fault == "read-only":
                assert _mount("-o", "remount,rw", str(small_state_dir)).returncode == 0
        world.settle(2, {"app", "extra"})  # nobody published the target again
    finally:
        probe.close()
