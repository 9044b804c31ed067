"""Start-up configuration errors, with the real `fleet-agent run`: one line on stderr saying what
is wrong, exit code 2, never a traceback, and nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import REPO


def run_agent(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_AGENT_")}
    environ |= {
        "FLEET_AGENT_DEVICE_ID": "dev-start",
        "FLEET_AGENT_STATE_DIR": str(tmp_path / "state"),
        "FLEET_AGENT_MQTT_URL": "none",
        "FLEET_AGENT_LOG_FORMAT": "json",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "fleet_agent.cli", "run", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FLEET_AGENT_MQTT_URL": "mqtt://127.0.0.1:99999"}, "port 99999 is out of range"),
        ({"FLEET_AGENT_MQTT_URL": "mqtt://127.0.0.1:abc"}, "port 'abc' is not a number"),
        ({"FLEET_AGENT_TOPIC_PREFIX": "fleet/+"}, "topic_prefix 'fleet/+' must not hold"),
        ({"FLEET_AGENT_TOPIC_PREFIX": "fleet/#"}, "topic_prefix 'fleet/#' must not hold"),
        ({"FLEET_AGENT_TOPIC_PREFIX": "/fleet"}, "has an empty level"),
        ({"FLEET_AGENT_RECONCILE_INTERVAL": "inf"}, "reconcile_interval"),
        ({"FLEET_AGENT_MAX_RETRIES": "many"}, "max_retries"),
        ({"FLEET_AGENT_MAX_SERVICES": "0"}, "max_services"),
        ({"FLEET_AGENT_DEVICE_ID": "Dev 1"}, "device_id"),
        ({"FLEET_AGENT_STATE_DIR": "/proc/fleet-agent-state"}, "state_dir"),
        ({"DOCKER_HOST": "tcp://127.0.0.1:abc"}, "docker_host"),
        (
            {"FLEET_AGENT_MQTT_URL": "mqtts://127.0.0.1:8883", "FLEET_AGENT_MQTT_CA_FILE": "/nope"},
            "mqtt_ca_file '/nope'",
        ),
    ],
)
def test_a_configuration_error_is_one_line_and_exit_code_2(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    result = run_agent(tmp_path, env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("fleet-agent: ")
    assert says in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_an_unreadable_config_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_bytes(b"device_id = \xff\n")

    for path in (bad, tmp_path / "missing.toml", tmp_path):
        result = run_agent(tmp_path, {}, "--config", str(path))

        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "cannot read config" in result.stderr


def test_a_target_file_that_is_a_directory_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = run_agent(tmp_path, {}, "--target-file", str(tmp_path))

    assert result.returncode == 2
    assert result.stderr == f"fleet-agent: --target-file '{tmp_path}' is a directory\n"
