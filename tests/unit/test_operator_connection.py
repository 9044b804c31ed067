"""Operator connection settings and change listeners (no broker needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleet_agent.operator.changes import Listeners, Waiter
from fleet_agent.operator.connection import Connection, SettingsError, load
from fleet_agent.operator.errors import WaitTimeout
from fleet_agent.operator.fleet import Change


def test_connection_settings_come_from_the_agents_file_and_variables(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('device_id = "dev-001"\nmqtt_url = "mqtt://10.0.0.1:1"\nmqtt_protocol = 5\n')
    env = {"FLEET_AGENT_MQTT_USERNAME": "ops", "FLEET_AGENT_TOPIC_PREFIX": "acme"}
    conn = load(path, environ=env)
    assert conn.mqtt_url == "mqtt://10.0.0.1:1" and conn.mqtt_username == "ops"
    assert conn.topic_prefix == "acme" and conn.mqtt_protocol == "5"
    assert load(path, url="mqtts://broker", environ=env).port == 8883
    assert load(environ={}).mqtt_url == "mqtt://127.0.0.1:1883"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"FLEET_AGENT_MQTT_URL": "http://x"}, "mqtt_url"),
        ({"FLEET_AGENT_MQTT_URL": "mqtt://x:99999"}, "mqtt_url"),
        ({"FLEET_AGENT_MQTT_PROTOCOL": "4"}, "mqtt_protocol"),
        ({"FLEET_AGENT_TOPIC_PREFIX": "a/#"}, "topic_prefix"),
    ],
)
def test_a_bad_connection_setting_is_one_plain_error(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load(environ=env)


def test_an_unreadable_config_file_is_one_plain_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config"):
        load(tmp_path / "missing.toml", environ={})


def test_the_password_file_variable_is_honoured_like_the_agent_does(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.password"
    secret.write_text("s3cret\nignored\n")
    env = {"FLEET_AGENT_MQTT_USERNAME": "monitor", "FLEET_AGENT_MQTT_PASSWORD_FILE": str(secret)}

    assert load(environ=env).mqtt_password == "s3cret"
    given = {**env, "FLEET_AGENT_MQTT_PASSWORD": "given"}
    assert load(environ=given).mqtt_password == "given"
    with pytest.raises(SettingsError, match="mqtt_password_file"):
        load(environ={"FLEET_AGENT_MQTT_PASSWORD_FILE": str(tmp_path / "missing")})


def test_listeners_survive_a_failing_callback_and_streams_and_waiters_get_each_change() -> None:
    listeners = Listeners()
    got: list[Change] = []

    def broken(_: Change) -> None:
        raise RuntimeError("boom")

    listeners.add(broken)
    unsubscribe = listeners.add(got.append)
    stream = listeners.stream()
    waiter = listeners.waiter(lambda c: c.device_id if c.kind == "state" else None)
    listeners.publish(Change("d1", "services", True))
    listeners.publish(Change("d2", "state", True))
    assert [c.device_id for c in got] == ["d1", "d2"]
    assert waiter.wait(0.1, "never") == "d2"
    assert [stream.get(0.1), stream.get(0.1)] == [Change("d1", "services", True), got[1]]
    unsubscribe()
    stream.close()
    listeners.publish(Change("d3", "state", True))
    assert len(got) == 2 and stream.get(0.1) is None


def test_a_waiter_without_a_match_times_out_with_its_message() -> None:
    waiter: Waiter[str] = Listeners().waiter(lambda _: None)
    with pytest.raises(WaitTimeout, match="no ack"):
        waiter.wait(0.01, "no ack")


def test_a_bounded_stream_counts_what_it_dropped() -> None:
    listeners = Listeners()
    stream = listeners.stream(maxsize=1)
    for name in ("a", "b", "c"):
        listeners.publish(Change(name, "state", True))
    assert stream.dropped == 2 and list(iter(lambda: stream.get(0.01), None)) == [
        Change("a", "state", True)
    ]
    assert Connection().host == "127.0.0.1"


def test_the_device_agent_never_imports_the_operator_side() -> None:
    # (rich may be loaded by structlog when it is installed; it is no dependency of the agent)
    code = """
import contextlib, sys
import fleet_agent.agent, fleet_agent.cli
with contextlib.suppress(SystemExit):
    fleet_agent.cli.main(["run", "--help"])
print(sorted(m for m in sys.modules if m.startswith(("fleet_agent.operator", "yaml"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
