"""Guarded rollouts over three real agents (`fleet-agent run` processes) on the real Docker
engine with images from the test registry: a good release reaches every device phase by phase,
a release whose image is missing aborts in its first phase and is rolled back there."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.fleet import Device
from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, containers_of, service, target
from tests.integration.rollouts import Recorder, rollout, write_release

SLEEP = ["sh", "-c", "exec sleep 3600"]


def release(image: str) -> dict[str, object]:
    return target(None, service("web", image, command=SLEEP, networkMode="none"))


@pytest.fixture
def devices(
    broker: PrivateMosquitto, services: Services, api: docker.APIClient, tmp_path: Path
) -> Iterator[list[str]]:
    """Three agents on release 1 (`FLEET_TEST_IMAGE_1`), all running."""
    base = f"it-{uuid.uuid4().hex[:8]}"
    ids = [f"{base}-{i}" for i in range(3)]
    agents = [AgentProcess(tmp_path / d, d, services.docker_host) for d in ids]
    for device_id in ids:
        (tmp_path / device_id).mkdir()
    try:
        for agent in agents:
            agent.env["FLEET_AGENT_MQTT_URL"] = broker.url
            agent.start(target_file=False)
        with FleetClient(Connection(mqtt_url=broker.url)) as client:
            client.wait_until(lambda ds: all(ds.get(d) and ds[d].online for d in ids), 60)
            for device_id in ids:
                assert client.apply(device_id, release(services.image1), timeout=60).accepted
            client.wait_until(lambda ds: all(_runs(ds.get(d), services.image1) for d in ids), 180)
        yield ids
    finally:
        for agent in agents:
            agent.stop()
        for device_id in ids:
            for row in containers_of(api, device_id):
                api.remove_container(row["Id"], force=True, v=True)


def _runs(device: Device | None, image: str, version: int | None = None) -> bool:
    status = device.services.get("web") if device else None
    return (
        status is not None
        and status.service_status == "running"
        and status.error is None
        and status.image_name == image
        and (version is None or status.target_version == version)
    )


@pytest.fixture
def recorder(broker: PrivateMosquitto) -> Iterator[Recorder]:
    instance = Recorder("127.0.0.1", broker.port)
    yield instance
    instance.close()


def test_a_good_release_reaches_three_real_devices_phase_by_phase(
    broker: PrivateMosquitto, devices: list[str], services: Services, recorder: Recorder,
    tmp_path: Path,
) -> None:  # fmt: skip
    file = write_release(tmp_path / "good.json", _json(release(services.image2)))
    since = time.time()
    result = rollout(
        broker.url, "start", str(file), "--name", "good", "--devices", "it-*",
        "--phases", "1,100%", "--bake", "2s", "--progress-deadline", "180s",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert sorted(d for d, _, _ in recorder.published(since)) == sorted(devices)
    with FleetClient(Connection(mqtt_url=broker.url)) as client:
        snapshot = client.devices()
    assert all(_runs(snapshot[d], services.image2, 2) for d in devices)
    first = min(t for d, _, t in recorder.published(since) if d == devices[0])
    rest = min(t for d, _, t in recorder.published(since) if d != devices[0])
    assert rest >= first + 2.0  # the second phase began after the first one baked


def test_a_release_with_a_missing_image_aborts_in_its_first_phase_and_rolls_back(
    broker: PrivateMosquitto, devices: list[str], services: Services, recorder: Recorder,
    tmp_path: Path,
) -> None:  # fmt: skip
    file = write_release(tmp_path / "bad.json", _json(release(services.missing_image)))
    since = time.time()
    result = rollout(
        broker.url, "start", str(file), "--name", "bad", "--devices", "it-*",
        "--phases", "1,100%", "--bake", "2s", "--progress-deadline", "180s",
        "--abort-on", "ErrImagePull,ImagePullBackOff", "--on-abort", "rollback",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rolled-back" in result.stdout and "ImagePullBackOff" in result.stdout
    versions = [(d, v) for d, v, _ in recorder.published(since)]
    assert versions == [(devices[0], 2), (devices[0], 3)]
    with FleetClient(Connection(mqtt_url=broker.url)) as client:
        snapshot = client.devices()
    assert _runs(snapshot[devices[0]], services.image1, 3)
    assert all(_runs(snapshot[d], services.image1, 1) for d in devices[1:])


def _json(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()
