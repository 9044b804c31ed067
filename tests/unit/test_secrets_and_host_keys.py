"""Secrets masked in published output; the grammar of the host keys; settings for both."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_agent import config, hostkeys
from fleet_agent.masking import MASK, MAX_OUTPUT, mask
from fleet_agent.model import Target
from fleet_agent.validate import decode_target

from .factories import encode, target_doc

CFG = "$.apps.1001.services[0].config"


def test_every_environment_value_is_masked_longest_first() -> None:
    text = mask(
        "user=admin pass=s3cr3t-token url=http://admin:s3cr3t-token@db",
        ["s3cr3t-token", "s3cr3t", "admin"],
    )

    assert text == f"user={MASK} pass={MASK} url=http://{MASK}:{MASK}@db"


def test_a_secret_spanning_lines_is_masked_in_a_joined_log_tail_and_line_by_line() -> None:
    key = "-----BEGIN KEY-----\n  c2VjcmV0LWtleQ==\n-----END KEY-----"
    joined = "starting | -----BEGIN KEY----- | c2VjcmV0LWtleQ== | -----END KEY----- | bye"
    cut = "c2VjcmV0LWtleQ== | -----END KEY----- | bye"

    assert mask(joined, [key]) == f"starting | {MASK} | bye"
    assert "c2VjcmV0LWtleQ==" not in mask(cut, [key])


def test_tiny_values_are_not_masked_and_output_is_capped() -> None:
    assert mask("exit 1 on", ["1", "on"]) == "exit 1 on"
    capped = mask("x" * 5000, [])
    assert len(capped) == MAX_OUTPUT and capped.endswith("...")


def errors_of(**config_keys: object) -> list[tuple[str, str]]:
    result = decode_target(encode(target_doc(7, config=config_keys)))
    return [] if isinstance(result, Target) else [(e.path, e.message) for e in result]


def test_well_formed_host_keys_decode() -> None:
    assert (
        errors_of(
            privileged=False,
            devices=["/dev/ttyUSB0", "/dev/ttyUSB1:/dev/ttyS1", "/dev/i2c-1:/dev/i2c-1:rw"],
            capAdd=["NET_ADMIN", "cap_sys_time"],
            user="1000:1000",
            readOnly=True,
            memLimit="256m",
            cpus=1.5,
        )
        == []
    )
    assert errors_of(memLimit=64 * 1024 * 1024, cpus=2) == []


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("devices", ["ttyUSB0"], "devices[0]"),
        ("devices", ["/dev/a:/dev/b:xyz"], "devices[0]"),
        ("capAdd", ["NET ADMIN"], "capAdd[0]"),
        ("user", "root; rm -rf /", "user"),
        ("memLimit", "lots", "memLimit"),
        ("memLimit", "1k", "memLimit"),
        ("cpus", 0, "cpus"),
        ("privileged", "yes", "privileged"),
        ("readOnly", 1, "readOnly"),
    ],
)
def test_malformed_host_keys_are_schema_errors_with_their_path(
    key: str, value: object, path: str
) -> None:
    assert [p for p, _ in errors_of(**{key: value})] == [f"{CFG}.{path}"]


def test_memory_limits_read_as_the_engine_does() -> None:
    assert hostkeys.memory_bytes("512MB") == 512 * 1024**2
    assert hostkeys.memory_bytes("1g") == 1024**3
    assert hostkeys.memory_bytes(7_000_000) == 7_000_000
    assert hostkeys.nano_cpus(0.25) == 250_000_000


def test_the_mqtt_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter22\n")
    env = {"FLEET_AGENT_DEVICE_ID": "dev-1", "FLEET_AGENT_MQTT_PASSWORD_FILE": str(secret)}

    assert config.load(environ=env).mqtt_password == "hunter22"
    direct = config.load(environ={**env, "FLEET_AGENT_MQTT_PASSWORD": "given"})
    assert direct.mqtt_password == "given"
    with pytest.raises(config.ConfigError, match="mqtt_password_file"):
        config.load(environ={**env, "FLEET_AGENT_MQTT_PASSWORD_FILE": str(tmp_path / "nope")})


def test_policy_and_trusted_keys_settings_fail_at_start_up_with_one_line(tmp_path: Path) -> None:
    base = {"FLEET_AGENT_DEVICE_ID": "dev-1"}
    bad_policy = tmp_path / "policy.toml"
    bad_policy.write_text("privileged = maybe\n")
    cases = [
        {"FLEET_AGENT_POLICY_FILE": str(bad_policy)},
        {"FLEET_AGENT_TRUSTED_KEYS": str(tmp_path / "none.jwks")},
        {"FLEET_AGENT_REQUIRE_SIGNED": "true"},
    ]
    for extra in cases:
        settings = config.load(environ={**base, **extra})
        with pytest.raises(config.ConfigError):
            config.admission(settings)
    default = config.admission(config.load(environ=base))
    assert default.rules.bind_prefixes == ["/srv"] and default.trust is None


def test_the_agents_tls_verifies_the_broker_certificate_and_its_host_name(tmp_path: Path) -> None:
    import ssl  # noqa: PLC0415

    from fleet_agent.mqtt import _client  # noqa: PLC0415

    settings = config.load(
        environ={"FLEET_AGENT_DEVICE_ID": "dev-1", "FLEET_AGENT_MQTT_URL": "mqtts://b:8883"}
    )
    context = _client(settings)._ssl_context

    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True


def test_a_step_message_is_masked_with_its_own_services_environment() -> None:
    from fleet_agent import planner  # noqa: PLC0415
    from fleet_agent.masking import masked_step  # noqa: PLC0415
    from fleet_agent.outcomes import StepResult  # noqa: PLC0415

    result = StepResult(planner.Start("a", "c1"), "failed", "bad env PASS=hunter22 for a")
    envs = {"a": ["hunter22"], "b": ["for a"]}

    assert masked_step(result, envs).message == "bad env PASS=*** for a"
    assert masked_step(result, {"b": ["hunter22"]}) == result
