"""`fleet-agent demo --cleanup` from start to finish against the real engine, registry and
broker: both services end running, and nothing is left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import docker

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import Connection
from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import REPO, containers_of
from tests.integration.mqtt_probe import MqttProbe


def test_the_demo_plays_the_whole_story_and_cleans_up_after_itself(
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    api: docker.APIClient,
    device_id: str,
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_AGENT_")}
    env["DOCKER_HOST"] = services.docker_host
    args = ["demo", "--cleanup", "--device", device_id, "--url", broker.url]
    args += ["--registry", services.registry, "--home", str(tmp_path / "demo")]
    done = subprocess.run(
        [sys.executable, "-m", "fleet_agent.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "\x1b[" not in out  # not a terminal: plain text, no colours
    steps = re.findall(r"^\[(\d)/8\] (.*)$", out, re.MULTILINE)
    assert [n for n, _ in steps] == [str(n) for n in range(1, 9)]
    for needle in (
        "ImagePullBackOff",
        "alert warning",
        "attempt 2/4",
        "critical MaxRetriesExceeded",
        "target version 2 accepted",
        "alert cleared",
        "stopped the agent",
    ):
        assert needle in out, (needle, out)

    statuses = [json.loads(p) for t, p, _ in probe.messages if "/services/" in t and p]
    final = {
        s["serviceName"]
        for s in statuses
        if s["serviceStatus"] == "running" and s["targetVersion"] == 2 and s["error"] is None
    }
    assert final == {"web", "broken"}
    alerts = [json.loads(p) for t, p, _ in probe.messages if t.endswith("/alerts/broken") and p]
    assert [a["severity"] for a in alerts] == ["warning", "critical"]

    # nothing left behind: containers, the agent, retained topics, its folder
    assert containers_of(api, device_id) == []
    pid = int(re.search(r"fleet-agent run, pid (\d+)", out).group(1))  # type: ignore[union-attr]
    assert (
        not Path(f"/proc/{pid}").exists()
        or b"fleet_agent" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    assert not (tmp_path / "demo" / device_id).exists()
    with FleetClient(Connection(mqtt_url=broker.url), [device_id]) as late:
        assert late.device(device_id) is None  # the snapshot after connecting is complete
