"""Settings: TOML file, environment overrides, contract defaults and refused values."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_agent.backoff import BackoffPolicy
from fleet_agent.config import ConfigError, Settings, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_only_the_device_id_is_required_and_everything_else_has_the_contract_default() -> None:
    settings = load(None, {"FLEET_AGENT_DEVICE_ID": "dev-001"})

    assert settings == Settings(
        device_id="dev-001",
        mqtt_url="mqtt://127.0.0.1:1883",
        mqtt_username=None,
        mqtt_password=None,
        mqtt_ca_file=None,
        mqtt_cert_file=None,
        mqtt_key_file=None,
        mqtt_protocol="5",
        topic_prefix="fleet",
        docker_host=None,
        state_dir="/var/lib/fleet-agent",
        reconcile_interval=30.0,
        backoff_initial=10.0,
        backoff_max=300.0,
        max_retries=10,
        crash_reset_after=600.0,
        pull_timeout=300.0,
        pull_concurrency=3,
        stop_timeout=10,
        max_target_bytes=262144,
        max_services=100,
        log_format=None,
    )
    assert settings.backoff == BackoffPolicy(10.0, 300.0, 10)


def test_a_missing_device_id_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="FLEET_AGENT_DEVICE_ID"):
        load(None, {})


def test_settings_are_read_from_the_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'device_id = "dev-file"\nmqtt_url = "mqtts://broker:8883"\n'
        'topic_prefix = "acme"\nreconcile_interval = 15\nmqtt_protocol = "3.1.1"\n',
    )

    settings = load(path, {})

    assert (
        settings.device_id,
        settings.mqtt_url,
        settings.topic_prefix,
        settings.reconcile_interval,
        settings.mqtt_protocol,
    ) == ("dev-file", "mqtts://broker:8883", "acme", 15.0, "3.1.1")


def test_environment_variables_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'device_id = "dev-file"\nreconcile_interval = 15\ntopic_prefix = "a"\n')

    settings = load(path, {"FLEET_AGENT_DEVICE_ID": "dev-env", "FLEET_AGENT_TOPIC_PREFIX": "b"})

    assert (settings.device_id, settings.topic_prefix, settings.reconcile_interval) == (
        "dev-env",
        "b",
        15.0,
    )


def test_environment_strings_are_converted_to_numbers_fractions_included() -> None:
    settings = load(
        None,
        {
            "FLEET_AGENT_DEVICE_ID": "dev-001",
            "FLEET_AGENT_BACKOFF_INITIAL": "0.1",
            "FLEET_AGENT_BACKOFF_MAX": "2.5",
            "FLEET_AGENT_MAX_RETRIES": "3",
            "FLEET_AGENT_RECONCILE_INTERVAL": "0.5",
            "FLEET_AGENT_CRASH_RESET_AFTER": "60",
        },
    )

    assert settings.backoff == BackoffPolicy(initial=0.1, maximum=2.5, max_retries=3)
    assert (settings.reconcile_interval, settings.crash_reset_after) == (0.5, 60.0)


def test_mqtt_credentials_tls_files_and_log_format_come_from_the_environment() -> None:
    settings = load(
        None,
        {
            "FLEET_AGENT_DEVICE_ID": "dev-001",
            "FLEET_AGENT_MQTT_USERNAME": "agent",
            "FLEET_AGENT_MQTT_PASSWORD": "s3cret",
            "FLEET_AGENT_MQTT_CA_FILE": "/etc/ca.pem",
            "FLEET_AGENT_MQTT_CERT_FILE": "/etc/cert.pem",
            "FLEET_AGENT_MQTT_KEY_FILE": "/etc/key.pem",
            "FLEET_AGENT_MQTT_PROTOCOL": "3.1.1",
            "FLEET_AGENT_STATE_DIR": "/tmp/state",
            "FLEET_AGENT_LOG_FORMAT": "json",
        },
    )

    assert (
        settings.mqtt_username,
        settings.mqtt_password,
        settings.mqtt_ca_file,
        settings.mqtt_cert_file,
        settings.mqtt_key_file,
        settings.mqtt_protocol,
        settings.state_dir,
        settings.resolved_log_format,
    ) == (
        "agent",
        "s3cret",
        "/etc/ca.pem",
        "/etc/cert.pem",
        "/etc/key.pem",
        "3.1.1",
        "/tmp/state",
        "json",
    )


def test_docker_host_is_taken_from_the_standard_variable(tmp_path: Path) -> None:
    path = write(tmp_path, 'device_id = "d1"\ndocker_host = "unix:///file.sock"\n')

    settings = load(path, {"DOCKER_HOST": "tcp://10.0.0.2:2375"})

    assert settings.docker_host == "tcp://10.0.0.2:2375"


def test_an_empty_docker_host_variable_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, 'device_id = "d1"\ndocker_host = "unix:///file.sock"\n')

    assert load(path, {"DOCKER_HOST": ""}).docker_host == "unix:///file.sock"


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = load(
        None, {"FLEET_AGENT_DEVICE_ID": "d1", "FLEET_AGENT_COLOUR": "blue", "HOME": "/"}
    )

    assert settings.device_id == "d1"


def test_the_process_environment_is_used_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEET_AGENT_DEVICE_ID", "from-os-env")

    assert load().device_id == "from-os-env"


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("FLEET_AGENT_RECONCILE_INTERVAL", "abc", "reconcile_interval"),
        ("FLEET_AGENT_RECONCILE_INTERVAL", "0", "reconcile_interval"),
        ("FLEET_AGENT_BACKOFF_INITIAL", "-1", "backoff_initial"),
        ("FLEET_AGENT_BACKOFF_MAX", "0", "backoff_max"),
        ("FLEET_AGENT_MAX_RETRIES", "0", "max_retries"),
        ("FLEET_AGENT_MAX_RETRIES", "2.5", "max_retries"),
        ("FLEET_AGENT_MQTT_PROTOCOL", "4", "mqtt_protocol"),
        ("FLEET_AGENT_LOG_FORMAT", "xml", "log_format"),
        ("FLEET_AGENT_DEVICE_ID", "Bad!", "device_id"),
        ("FLEET_AGENT_DEVICE_ID", "dev/001", "device_id"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_setting(
    variable: str, value: str, reason: str
) -> None:
    environ = {"FLEET_AGENT_DEVICE_ID": "dev-001", variable: value}

    with pytest.raises(ConfigError, match=reason):
        load(None, environ)


def test_an_unknown_key_in_the_file_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'device_id = "d1"\nbogus = 1\n')

    with pytest.raises(ConfigError, match="bogus"):
        load(path, {})


def test_an_unreadable_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "missing.toml", {"FLEET_AGENT_DEVICE_ID": "d1"})
    with pytest.raises(ConfigError, match="cannot read config"):
        load(write(tmp_path, "device_id = \n"), {"FLEET_AGENT_DEVICE_ID": "d1"})


def test_an_explicit_log_format_is_used_as_given() -> None:
    settings = load(None, {"FLEET_AGENT_DEVICE_ID": "d1", "FLEET_AGENT_LOG_FORMAT": "console"})

    assert settings.resolved_log_format == "console"


def test_integration_settings_default_to_off_with_a_midnight_summary() -> None:
    settings = load(None, {"FLEET_AGENT_DEVICE_ID": "dev-001"})
    assert settings.webhook_urls == [] and settings.webhook_secret is None
    assert settings.summary_time == (0, 0) and settings.summary_every is None
    assert settings.summary_window == 86400.0
    assert settings.ha_discovery is False and settings.ha_prefix == "homeassistant"
    assert settings.labels == {}


def test_labels_and_several_webhook_urls_come_from_the_environment() -> None:
    settings = load(
        None,
        {
            "FLEET_AGENT_DEVICE_ID": "dev-001",
            "FLEET_AGENT_LABELS": "site=berlin, rack = 3,,",
            "FLEET_AGENT_WEBHOOK_URL": "http://127.0.0.1:9000/a, https://hooks.example/b?t=x",
            "FLEET_AGENT_SUMMARY_AT": "23:59",
            "FLEET_AGENT_HA_DISCOVERY": "true",
        },
    )
    assert settings.labels == {"site": "berlin", "rack": "3"}
    assert settings.webhook_urls == ["http://127.0.0.1:9000/a", "https://hooks.example/b?t=x"]
    assert settings.summary_time == (23, 59) and settings.ha_discovery is True


def test_labels_can_be_a_toml_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'device_id = "d"\n[labels]\nsite = "berlin"\n')
    assert load(path, {}).labels == {"site": "berlin"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LABELS", "site", "not key=value"),
        ("WEBHOOK_URL", "ftp://x/y", "webhook_url"),
        ("WEBHOOK_URL", "http://a:99999/x", "webhook_url"),
        ("SUMMARY_AT", "24:00", "summary_at"),
        ("SUMMARY_AT", "7:5", "summary_at"),
        ("SUMMARY_EVERY", "0", "summary_every"),
        ("HA_PREFIX", "home/#", "ha_prefix"),
        ("WEBHOOK_TIMEOUT", "-1", "webhook_timeout"),
    ],
)
def test_bad_integration_settings_are_config_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(None, {"FLEET_AGENT_DEVICE_ID": "d", f"FLEET_AGENT_{name}": value})


def test_a_bad_webhook_url_is_reported_without_its_credentials() -> None:
    with pytest.raises(ConfigError) as caught:
        load(None, {"FLEET_AGENT_DEVICE_ID": "d", "FLEET_AGENT_WEBHOOK_URL": "ftp://u:pw@h/x"})
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mqtt://h:99999", "port 99999 is out of range 1-65535"),
        ("mqtt://h:0", "port 0 is out of range 1-65535"),
        ("mqtt://h:abc", "port 'abc' is not a number"),
        ("mqtt://h:٨٠", "port '٨٠' is not a number"),
        ("mqtt://h:", "port '' is not a number"),
        ("http://h:1883", "use mqtt://host:port"),
        ("mqtt://:1883", "use mqtt://host:port"),
        ("mqtt://user:pw@h:1883", "credentials go in FLEET_AGENT_MQTT_USERNAME"),
        ("mqtt://h:1883/x", "no path, query or fragment"),
    ],
)
def test_a_bad_mqtt_url_is_a_config_error_saying_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        load(None, {"FLEET_AGENT_DEVICE_ID": "d1", "FLEET_AGENT_MQTT_URL": url})

    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ["mqtt://h", "mqtts://h:8883", "mqtt://[::1]:1883", "none", ""])
def test_good_mqtt_urls_are_accepted(url: str) -> None:
    assert load(None, {"FLEET_AGENT_DEVICE_ID": "d1", "FLEET_AGENT_MQTT_URL": url}).mqtt_url == url


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("fleet/+", "must not hold"),
        ("#", "must not hold"),
        ("a\x00b", "must not hold"),
        ("", "empty"),
        ("/fleet", "empty"),
        ("fleet/", "empty"),
        ("a//b", "empty"),
        ("$SYS", "must not start with"),
    ],
)
def test_a_topic_prefix_that_cannot_name_topics_is_a_config_error(prefix: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"topic_prefix.*{reason}"):
        load(None, {"FLEET_AGENT_DEVICE_ID": "d1", "FLEET_AGENT_TOPIC_PREFIX": prefix})


@pytest.mark.parametrize("prefix", ["fleet", "acme/prod", "site-1/fleet_a", "grüße"])
def test_a_topic_prefix_of_plain_levels_is_accepted(prefix: str) -> None:
    environ = {"FLEET_AGENT_DEVICE_ID": "d1", "FLEET_AGENT_TOPIC_PREFIX": prefix}

    assert load(None, environ).topic_prefix == prefix


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FLEET_AGENT_RECONCILE_INTERVAL", "inf"),
        ("FLEET_AGENT_RECONCILE_INTERVAL", "nan"),
        ("FLEET_AGENT_RECONCILE_INTERVAL", "1e308"),
        ("FLEET_AGENT_BACKOFF_MAX", "inf"),
        ("FLEET_AGENT_PULL_TIMEOUT", "1e12"),
        ("FLEET_AGENT_MAX_RETRIES", "100000000000000000000"),
        ("FLEET_AGENT_STOP_TIMEOUT", "99999999999"),
        ("FLEET_AGENT_PULL_CONCURRENCY", "1000000"),
        ("FLEET_AGENT_MAX_TARGET_BYTES", "1e30"),
        ("FLEET_AGENT_MAX_SERVICES", "0"),
        ("FLEET_AGENT_MAX_SERVICES", "\u0661\u0660"),  # Arabic-Indic 10
    ],
)
def test_numbers_beyond_sane_bounds_are_config_errors(variable: str, value: str) -> None:
    name = variable.removeprefix("FLEET_AGENT_").lower()

    with pytest.raises(ConfigError, match=name):
        load(None, {"FLEET_AGENT_DEVICE_ID": "d1", variable: value})


def test_the_services_cap_is_a_setting_with_a_default_of_100() -> None:
    assert load(None, {"FLEET_AGENT_DEVICE_ID": "d1"}).max_services == 100
    environ = {"FLEET_AGENT_DEVICE_ID": "d1", "FLEET_AGENT_MAX_SERVICES": "250"}
    assert load(None, environ).max_services == 250


def test_a_backoff_maximum_below_the_initial_delay_is_a_config_error() -> None:
    environ = {
        "FLEET_AGENT_DEVICE_ID": "d1",
        "FLEET_AGENT_BACKOFF_INITIAL": "20",
        "FLEET_AGENT_BACKOFF_MAX": "10",
    }

    with pytest.raises(ConfigError, match="backoff_max"):
        load(None, environ)


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'device_id = "d\xff1"\n')

    with pytest.raises(ConfigError, match="cannot read config"):
        load(path, {})


def test_a_config_file_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path, {"FLEET_AGENT_DEVICE_ID": "d1"})


def test_a_config_file_with_a_table_where_a_value_belongs_is_a_config_error(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, 'device_id = "d1"\n[mqtt_url]\nhost = "h"\n')

    with pytest.raises(ConfigError, match="mqtt_url"):
        load(path, {})
