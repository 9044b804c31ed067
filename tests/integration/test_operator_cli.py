"""The operator commands (`status`, `describe`, `apply`, `retry`) as real processes against a
real Mosquitto, engine, registry and agent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import REPO, AgentProcess, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe

SLEEP = ["sh", "-c", "exec sleep 3600"]


def fleet(
    broker: PrivateMosquitto, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_AGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "fleet_agent.cli", *args, "--url", broker.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def start_agent(
    agent: AgentProcess, broker: PrivateMosquitto, retries: int = 3, backoff: float = 20
) -> None:
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_BACKOFF_INITIAL=str(backoff),  # 20 s: long enough to read a countdown
        FLEET_AGENT_BACKOFF_MAX=str(backoff * 2),
        FLEET_AGENT_MAX_RETRIES=str(retries),
    )
    agent.start(target_file=False)


def write(path: Path, doc: dict[str, Any] | str) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_status_and_describe_show_why_a_service_fails_and_when_it_retries(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    start_agent(agent, broker)
    doc = target(
        None,
        service("web", services.image1, 1, SLEEP),
        service("broken", services.missing_image, 2),
    )
    assert fleet(broker, "apply", device_id, str(write(tmp_path / "t.json", doc))).returncode == 0
    probe.wait_json("services/broken", lambda s: s["error"] is not None, timeout=60)
    probe.wait_json("services/web", lambda s: s["serviceStatus"] == "running", timeout=60)

    status = fleet(broker, "status", device_id)
    assert status.returncode == 1, status.stderr  # something is in error
    lines = {line.split()[2]: line for line in status.stdout.splitlines()[1:]}
    assert lines["broken"].split()[:6] == [
        device_id,
        "online",
        "broken",
        "error",
        "ImagePullBackOff",
        "1/3",
    ]
    assert re.search(r" in \d+s ", lines["broken"]), lines["broken"]  # next retry, relative
    assert services.missing_image in lines["broken"]
    assert lines["web"].split()[3] == "running"
    assert status.stdout.splitlines()[0].split()[:4] == [
        "DEVICE",
        "AVAILABILITY",
        "SERVICE",
        "STATUS",
    ]

    described = fleet(broker, "describe", device_id, "broken")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    for needle in (
        "Status:",
        "ImagePullBackOff",
        "manifest unknown",
        "Retries:",
        "1/3",
        "Next retry:",
        "in ",
        "Alert:",
        "warning",
        "History:",
        "Target version:  1",
    ):
        assert needle in text, (needle, text)

    as_json = fleet(broker, "status", device_id, "-o", "json")
    assert as_json.returncode == 1
    device = json.loads(as_json.stdout)["devices"][0]
    assert device["deviceId"] == device_id and device["availability"] == "online"
    assert device["services"]["broken"] == probe.json("services/broken")
    assert device["alerts"]["broken"] == probe.json("alerts/broken")
    assert device["history"]["broken"] == probe.json("history/broken")
    assert device["ack"] == probe.json("target/ack") and device["state"] == probe.json("state")

    agent.stop()
    offline = fleet(broker, "status", device_id)
    assert offline.returncode == 1
    assert all(line.split()[1] == "offline" for line in offline.stdout.splitlines()[1:])
    assert "last report" in fleet(broker, "describe", device_id, "web").stdout


def test_status_exits_0_when_everything_runs_and_2_on_bad_usage(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    start_agent(agent, broker)
    doc = target(None, service("web", services.image1, 1, SLEEP))
    applied = fleet(broker, "apply", device_id, str(write(tmp_path / "t.json", doc)), "--wait")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert fleet(broker, "status", device_id).returncode == 0
    assert fleet(broker, "status", device_id, "--all").returncode == 2
    assert fleet(broker, "status", "-o", "yaml").returncode == 2
    unknown = fleet(broker, "status", "never-seen")
    assert unknown.returncode == 1 and "unknown" in unknown.stdout
    assert fleet(broker, "describe", device_id, "nope").returncode == 2


@pytest.mark.parametrize("kind", ["json", "yaml", "compose"])
def test_apply_takes_json_yaml_and_compose_and_numbers_versions_itself(
    kind: str,
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    start_agent(agent, broker)
    first = tmp_path / "first.json"
    write(first, target(4, service("web", services.image1, 1, SLEEP)))
    assert fleet(broker, "apply", device_id, str(first)).returncode == 0
    path = _document(kind, tmp_path, services.image2)
    applied = fleet(broker, "apply", device_id, str(path), "--wait")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"{device_id}: target version 5 accepted (200)" in applied.stdout  # 4 + 1
    assert "converged" in applied.stdout
    status = probe.wait_json("services/web", lambda s: s["targetVersion"] == 5)
    assert status["imageName"] == services.image2 and status["serviceStatus"] == "running"
    published = probe.json("target")
    config = published["apps"]["1"]["services"][0]["config"] if kind == "compose" else None
    if config is not None:
        assert config["environment"] == {"MODE": "demo", "FROM_FILE": "yes"}
        assert config["command"] == SLEEP and config["labels"] == {"team": "ops"}


def _document(kind: str, folder: Path, image: str) -> Path:
    if kind == "json":
        return write(folder / "t.json", target(None, service("web", image, 1, SLEEP)))
    if kind == "yaml":
        text = f"""
apps:
  1001:
    appId: 1001
    appName: it
    services:
      - serviceId: 1
        serviceName: web
        imageName: "{image}"
        config: {{networkMode: none, command: [sh, -c, exec sleep 3600]}}
"""
        return write(folder / "t.yaml", text)
    write(folder / "web.env", "# comment\nFROM_FILE=yes\n")
    text = f"""
services:
  web:
    image: "{image}"
    command: sh -c 'exec sleep 3600'
    environment: [MODE=demo]
    env_file: web.env
    network_mode: none
    restart: unless-stopped
    labels: {{team: ops}}
"""
    return write(folder / "docker-compose.yml", text)


def test_apply_prints_every_error_of_an_invalid_or_rejected_target_and_exits_2(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    start_agent(agent, broker)
    bad = {"apps": {"1": {"appId": 2, "services": [{"serviceName": "Web", "imageName": "UPPER"}]}}}
    invalid = fleet(broker, "apply", device_id, str(write(tmp_path / "bad.json", bad)))
    assert invalid.returncode == 2
    for path in (
        "$.apps.1.appId",
        "$.apps.1.services[0].serviceId",
        "$.apps.1.services[0].serviceName",
        "$.apps.1.services[0].imageName",
    ):
        assert path in invalid.stdout, invalid.stdout
    assert probe.raw("target") is None  # nothing was published

    compose = (
        "services:\n  web:\n    image: x\n    build: .\n    healthcheck: {test: true}\n"
        "networks: {}\n"
    )
    rejected = fleet(broker, "apply", device_id, str(write(tmp_path / "compose.yml", compose)))
    assert rejected.returncode == 2
    for path in ("$.services.web.build", "$.services.web.healthcheck", "$.networks"):
        assert path in rejected.stdout

    good = write(tmp_path / "good.json", target(9, service("web", services.image1, 1, SLEEP)))
    assert fleet(broker, "apply", device_id, str(good)).returncode == 0
    stale = write(tmp_path / "stale.json", target(3, service("web", services.image1, 1, SLEEP)))
    refused = fleet(broker, "apply", device_id, str(stale))
    assert refused.returncode == 2
    assert "target version 3 rejected (409)" in refused.stdout and "$.version" in refused.stdout
    assert probe.wait_json("target", lambda t: t["version"] == 9)  # the accepted one is back


def test_apply_wait_ends_with_a_failure_verdict_for_a_broken_image(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    start_agent(agent, broker)
    doc = target(
        None,
        service("web", services.image1, 1, SLEEP),
        service("broken", services.missing_image, 2),
    )
    result = fleet(broker, "apply", device_id, str(write(tmp_path / "t.json", doc)), "--wait")
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(f"{device_id}: failed: broken: ImagePullBackOff")


def test_retry_resets_an_exhausted_service(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    start_agent(agent, broker, retries=2, backoff=0.3)
    doc = target(None, service("broken", services.missing_image, 1))
    assert fleet(broker, "apply", device_id, str(write(tmp_path / "t.json", doc))).returncode == 0
    exhausted = probe.wait_json(
        "services/broken", lambda s: s["error"] and s["error"]["exhausted"], timeout=60
    )
    assert exhausted["error"]["retryCount"] == 2 and exhausted["error"]["nextRetry"] is None
    before = len(probe.messages)

    result = fleet(broker, "retry", device_id, "broken")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{device_id}: retrying broken"
    # a fresh start: attempts counted from 1 again, then exhausted again at 2

    def since_retry() -> list[Any]:
        return [
            json.loads(p)
            for t, p, _ in probe.messages[before:]
            if t.endswith("/services/broken") and p
        ]

    wait_for(lambda: any(s["error"] and s["error"]["exhausted"] for s in since_retry()), 60)
    counts = [s["error"]["retryCount"] for s in since_retry() if s["error"]]
    assert counts[0] == 1 and counts[-1] == 2, counts

    refused = fleet(broker, "retry", device_id, "nope")
    assert refused.returncode == 1 and "unknown service" in refused.stdout
