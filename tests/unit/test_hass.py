"""Home Assistant discovery: one device config whose entities read our topics by template."""

from __future__ import annotations

from typing import Any

import msgspec

from fleet_agent.hass import STATES, Discovery, device_config

WHERE = Discovery("dev-001", "fleet/dev-001", "homeassistant")


def config(services: list[str], removed: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.json.decode(device_config(WHERE, services, removed or []))
    return doc


def test_the_device_config_lives_under_the_prefix_with_our_availability_topic() -> None:
    doc = config(["nodered"])
    assert WHERE.config_topic == "homeassistant/device/fleet-agent-dev-001/config"
    assert WHERE.status_topic == "homeassistant/status"
    assert doc["dev"]["ids"] == ["fleet-agent-dev-001"] and doc["dev"]["name"] == "dev-001"
    assert doc["avty"] == [{"t": "fleet/dev-001/availability"}]
    assert doc["o"]["name"] == "fleet-agent"


def test_each_service_has_status_problem_next_retry_restarts_and_a_retry_button() -> None:
    cmps = config(["nodered"])["cmps"]
    assert set(cmps) == {
        "converged", "target_version", "nodered_status", "nodered_problem",
        "nodered_next_retry", "nodered_restarts", "nodered_retry",
    }  # fmt: skip
    status = cmps["nodered_status"]
    assert status["p"] == "sensor" and status["dev_cla"] == "enum"
    assert status["ops"] == list(STATES) and status["stat_t"] == "fleet/dev-001/services/nodered"
    problem = cmps["nodered_problem"]
    assert problem["p"] == "binary_sensor" and problem["dev_cla"] == "problem"
    assert problem["stat_t"] == "fleet/dev-001/alerts/nodered"
    assert cmps["nodered_next_retry"]["dev_cla"] == "timestamp"
    button = cmps["nodered_retry"]
    assert button["p"] == "button" and button["cmd_t"] == "fleet/dev-001/cmd/retry"
    assert msgspec.json.decode(button["pl_prs"]) == {"service": "nodered"}
    assert len({c["uniq_id"] for c in cmps.values()}) == len(cmps)
    assert cmps["converged"]["stat_t"] == cmps["target_version"]["stat_t"] == "fleet/dev-001/state"


def test_every_template_guards_the_empty_payload_of_a_cleared_topic() -> None:
    cmps = config(["nodered"])["cmps"]
    for name, component in cmps.items():
        template = component.get("val_tpl")
        if template is not None and name != "nodered_problem":
            assert template.startswith("{% if not value %}None{% else %}"), name


def test_a_service_that_left_gets_platform_only_components_which_remove_its_entities() -> None:
    cmps = config(["one"], removed=["two"])["cmps"]
    assert cmps["two_status"] == {"p": "sensor"} and cmps["two_retry"] == {"p": "button"}
    assert cmps["two_problem"] == {"p": "binary_sensor"}
    assert cmps["one_status"]["stat_t"] == "fleet/dev-001/services/one"
    # a service that came back is announced again, not removed
    again = config(["one", "two"], removed=["two"])["cmps"]
    assert "stat_t" in again["two_status"]
