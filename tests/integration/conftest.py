"""Session fixtures for integration tests: real engine, registry and broker from testenv.sh."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from sqlalchemy.engine import Engine

from fleet_agent.operator.recorder import store
from tests.integration.brokers import PrivateMosquitto
from tests.integration.helpers import REPO, AgentProcess, containers_of
from tests.integration.invariants import World
from tests.integration.mqtt_probe import MqttProbe
from tests.integration.postgres import PrivatePostgres
from tests.integration.recorders import new_database

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Services:
    docker_host: str
    registry: str
    image1: str
    image2: str
    mqtt_host: str
    mqtt_port: int
    big_image: str  # 4 MiB of random data, for pull progress

    @property
    def missing_image(self) -> str:
        return f"{self.registry}/fleet-test/app:nope"


@pytest.fixture(scope="session")
def services() -> Services:
    """Start (or reuse) the real services; idempotent and quick when they already run."""
    out = subprocess.run(
        [str(REPO / "scripts" / "testenv.sh"), "all"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line
    )
    return Services(
        docker_host=env["DOCKER_HOST"],
        registry=env["FLEET_TEST_REGISTRY"],
        image1=env["FLEET_TEST_IMAGE_1"],
        image2=env["FLEET_TEST_IMAGE_2"],
        mqtt_host=env["FLEET_TEST_MQTT_HOST"],
        mqtt_port=int(env["FLEET_TEST_MQTT_PORT"]),
        big_image=env["FLEET_TEST_IMAGE_BIG"],
    )


@pytest.fixture(scope="session")
def api(services: Services) -> docker.APIClient:
    return docker.APIClient(base_url=services.docker_host, version="1.41", timeout=60)


@pytest.fixture
def device_id(api: docker.APIClient) -> Iterator[str]:
    """A fresh device id per test; every container labelled with it is removed afterwards."""
    device = f"it-{uuid.uuid4().hex[:10]}"
    yield device
    for row in containers_of(api, device):
        api.remove_container(row["Id"], force=True, v=True)


@pytest.fixture
def fresh_images(api: docker.APIClient, services: Services) -> None:
    """Make the agent really pull: drop local copies of the test images."""
    for image in (services.image1, services.image2):
        with contextlib.suppress(docker.errors.APIError):
            api.remove_image(image, force=True)


@pytest.fixture
def agent(
    tmp_path: Path, device_id: str, services: Services, request: pytest.FixtureRequest
) -> Iterator[AgentProcess]:
    proc = AgentProcess(tmp_path, device_id, services.docker_host)
    yield proc
    proc.stop()
    report = request.node.stash.get(_REPORT_KEY, None)
    if report is not None and report.failed:
        print(f"--- agent log tail ({proc.log_path}) ---\n{proc.log_tail(80)}")


_REPORT_KEY = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_REPORT_KEY] = report
    return report


@pytest.fixture
def probe(broker: PrivateMosquitto, device_id: str) -> Iterator[MqttProbe]:
    """A subscriber to everything the agent under test publishes on `broker`."""
    client = MqttProbe("127.0.0.1", broker.port, device_id)
    yield client
    client.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A Mosquitto of this test's own, which it may stop and start again."""
    instance = PrivateMosquitto(tmp_path)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def world(
    api: docker.APIClient, agent: AgentProcess, device_id: str, broker: PrivateMosquitto
) -> Iterator[World]:
    """The agent on a private broker, with the invariant checker of the fault-injection suite."""
    agent.env["FLEET_AGENT_MQTT_URL"] = broker.url
    instance = World(api, agent, device_id, broker.port)
    yield instance
    instance.remove_bystanders()


# The recorder's databases: every recorder test runs on SQLite and on a private PostgreSQL.
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_db(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    engines: list[Engine] = []

    def make() -> tuple[str, Engine]:
        server = request.getfixturevalue("pg_server") if db_kind == "postgresql" else None
        url = new_database(db_kind, tmp_path, server)
        engine = store.open_engine(url)
        engines.append(engine)
        return url, engine

    yield make
    for engine in engines:
        engine.dispose()
