"""Pull progress over MQTT: a 4 MiB image pulled slowly shows `downloading` with a percentage
that grows to 100, at most one new value a second, against the real engine and registry."""

from __future__ import annotations

import contextlib
import itertools
import json

import docker

from fleet_agent.operator.fleet import parse_time
from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.fake_registries import ThrottledRegistry
from tests.integration.helpers import AgentProcess, containers_of, service, target
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


def drop_big_images(api: docker.APIClient) -> None:
    """Every local copy of the big test image, under whatever registry name it was pulled."""
    for row in api.images():
        if any("/fleet-test/big:" in tag for tag in row.get("RepoTags") or []):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(row["Id"], force=True)


def test_a_slow_pull_reports_growing_percentages_that_end_at_100_once_a_second_at_most(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    api: docker.APIClient,
    device_id: str,
) -> None:
    with ThrottledRegistry(services.registry, rate=1 << 20) as slow:
        image = services.big_image.replace(services.registry, f"127.0.0.1:{slow.port}")
        drop_big_images(api)  # the engine must really download it
        agent.env.update(FLEET_AGENT_MQTT_URL=broker.url)
        probe.publish("target", target(1, service("big", image, 1, SLEEP)), retain=True)
        agent.start(target_file=False)
        probe.wait_json("services/big", lambda s: s["serviceStatus"] == "running", timeout=120)
    agent.stop()
    for row in containers_of(api, device_id):
        api.remove_container(row["Id"], force=True)
    drop_big_images(api)

    statuses = [json.loads(p) for t, p, _ in probe.messages if t.endswith("/services/big") and p]
    pulling = [s for s in statuses if s["serviceStatus"] == "downloading"]
    shown = [s for s in pulling if s["progress"] is not None]
    percents = [s["progress"]["percent"] for s in shown]
    assert len(shown) >= 3, percents  # 4 MiB at 1 MiB/s: several seconds of progress
    assert percents == sorted(percents) and len(set(percents)) == len(percents), percents
    assert percents[-1] == 100 and percents[0] < 100
    last = shown[-1]["progress"]
    assert last["bytesDone"] == last["bytesTotal"] and last["bytesTotal"] > 4_000_000
    stamps = [parse_time(s["updatedAt"]) or 0.0 for s in shown]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # at most one new value a second (stamps are cut to milliseconds, hence 0.99)
    assert all(gap >= 0.99 for gap in gaps), gaps
    after = statuses[statuses.index(shown[-1]) + 1 :]
    assert after and all(s["progress"] is None for s in after)  # only while downloading
