"""Strict target decoding: every invalid field is reported with its JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from fleet_agent.model import App, FieldError, Service, ServiceConfig, Target
from fleet_agent.validate import decode_target

from .factories import APP_ID, APP_NAME, IMAGE, encode, target_doc

SVC_PATH = "$.apps.1001.services[0]"


def errors_of(doc: Any) -> list[FieldError]:
    result = decode_target(encode(doc))
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return result


def with_config(**config: Any) -> dict[str, Any]:
    return target_doc(config=config)


def test_a_contract_target_decodes_to_its_structs() -> None:
    doc = target_doc(
        config={
            "command": ["sh", "-c", "exec node-red"],
            "environment": {"TZ": "UTC"},
            "ports": ["1880:1880", "5683:5683/udp"],
            "volumes": ["data:/data", "/srv/nodered:/config:ro"],
            "networkMode": "bridge",
            "restart": "unless-stopped",
            "labels": {"team": "ops"},
        }
    )

    result = decode_target(encode(doc))

    assert result == Target(
        apps={
            "1001": App(
                APP_ID,
                APP_NAME,
                [
                    Service(
                        1,
                        "nodered",
                        IMAGE,
                        ServiceConfig(
                            command=["sh", "-c", "exec node-red"],
                            environment={"TZ": "UTC"},
                            ports=["1880:1880", "5683:5683/udp"],
                            volumes=["data:/data", "/srv/nodered:/config:ro"],
                            network_mode="bridge",
                            restart="unless-stopped",
                            labels={"team": "ops"},
                        ),
                    )
                ],
            )
        },
        version=7,
    )


def test_a_service_without_config_gets_the_defaults() -> None:
    doc = {
        "apps": {
            "1": {"appId": 1, "services": [{"serviceId": 1, "serviceName": "a", "imageName": "a"}]}
        }
    }

    result = decode_target(encode(doc))

    assert isinstance(result, Target)
    config = result.app_list()[0].services[0].config
    assert config == ServiceConfig()
    assert config.restart == "unless-stopped"


def test_apps_given_as_a_list_are_accepted() -> None:
    doc = {"version": 1, "apps": [{"appId": 5, "services": []}, {"appId": 6}]}

    result = decode_target(encode(doc))

    assert result == Target(apps=[App(5, "", []), App(6, "", [])], version=1)


def test_an_empty_apps_object_is_an_explicit_empty_target() -> None:
    assert decode_target(b'{"apps": {}}') == Target(apps={}, version=None)


def test_a_payload_that_is_not_json_is_reported_at_the_root() -> None:
    result = decode_target(b"{nope")

    assert isinstance(result, list)
    assert len(result) == 1
    assert result[0].path == "$"
    assert result[0].message.startswith("invalid JSON: ")


def test_a_json_array_is_not_a_target() -> None:
    assert errors_of([]) == [FieldError("$", "Expected `object`, got `array`")]


def test_a_target_without_apps_is_missing_a_required_field() -> None:
    assert errors_of({"version": 1}) == [FieldError("$.apps", "missing required field")]


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (-1, "Expected `int` >= 0"),
        ("7", "Expected `int | null`, got `str`"),
        (True, "Expected `int | null`, got `bool`"),
        (1.5, "Expected `int | null`, got `float`"),
    ],
)
def test_a_version_that_is_not_a_non_negative_integer_is_reported(
    version: Any, message: str
) -> None:
    assert errors_of({"apps": {}, "version": version}) == [FieldError("$.version", message)]


def test_apps_of_the_wrong_type_are_reported() -> None:
    assert errors_of({"apps": "x"}) == [
        FieldError("$.apps", "Expected `object | array`, got `str`")
    ]


def test_every_schema_error_is_reported_at_once_with_its_path() -> None:
    doc = target_doc(
        serviceId="1",
        config={
            "restart": "sometimes",
            "ports": "80",
            "environment": {"A": 1},
            "command": "sh",
            "pidMode": "host",
        },
    )

    assert errors_of(doc) == [
        FieldError(f"{SVC_PATH}.serviceId", "Expected `int`, got `str`"),
        FieldError(f"{SVC_PATH}.config.pidMode", "unknown field"),
        FieldError(f"{SVC_PATH}.config.command", "Expected `array | null`, got `str`"),
        FieldError(f"{SVC_PATH}.config.environment.A", "Expected `str`, got `int`"),
        FieldError(f"{SVC_PATH}.config.ports", "Expected `array`, got `str`"),
        FieldError(f"{SVC_PATH}.config.restart", "Invalid enum value 'sometimes'"),
    ]


def test_unknown_fields_are_reported_at_every_level() -> None:
    doc = target_doc(extra=1)
    doc["note"] = "x"
    doc["apps"]["1001"]["owner"] = "me"

    assert errors_of(doc) == [
        FieldError("$.note", "unknown field"),
        FieldError("$.apps.1001.owner", "unknown field"),
        FieldError(f"{SVC_PATH}.extra", "unknown field"),
    ]


def test_missing_service_fields_are_each_reported() -> None:
    doc = {"apps": {"1001": {"appId": 1001, "services": [{}]}}}

    assert errors_of(doc) == [
        FieldError(f"{SVC_PATH}.serviceId", "missing required field"),
        FieldError(f"{SVC_PATH}.serviceName", "missing required field"),
        FieldError(f"{SVC_PATH}.imageName", "missing required field"),
    ]


def test_wrong_container_types_are_reported_where_they_are() -> None:
    assert errors_of({"apps": {"1001": None}}) == [
        FieldError("$.apps.1001", "Expected `object`, got `null`")
    ]
    assert errors_of({"apps": {"1001": {"appId": 1001, "services": {}}}}) == [
        FieldError("$.apps.1001.services", "Expected `array`, got `object`")
    ]
    assert errors_of(target_doc(imageName=5)) == [
        FieldError(f"{SVC_PATH}.imageName", "Expected `str`, got `int`")
    ]


def test_an_app_id_that_does_not_match_its_key_is_reported() -> None:
    doc = target_doc()
    doc["apps"]["1001"]["appId"] = 1002

    assert errors_of(doc) == [
        FieldError("$.apps.1001.appId", "appId 1002 does not match key '1001'")
    ]


def test_a_duplicate_service_name_is_reported_where_it_repeats() -> None:
    doc = target_doc()
    first = doc["apps"]["1001"]["services"][0]
    doc["apps"]["2002"] = {"appId": 2002, "services": [dict(first, serviceId=2)]}

    assert errors_of(doc) == [
        FieldError(
            "$.apps.2002.services[0].serviceName",
            "duplicate service name 'nodered', first at $.apps.1001.services[0]",
        )
    ]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("nodered/Node-Red:latest", "invalid reference format: repository name must be lowercase"),
        ("Nginx", "invalid reference format: repository name must be lowercase"),
        ("node red", "invalid reference format"),
        ("nodered/node-red:", "invalid reference format"),
        ("nodered/node-red:bad tag", "invalid reference format"),
        ("", "invalid reference format"),
    ],
)
def test_an_invalid_image_reference_is_reported_on_image_name(image: str, message: str) -> None:
    assert errors_of(target_doc(imageName=image)) == [FieldError(f"{SVC_PATH}.imageName", message)]


def test_an_invalid_image_reference_in_a_list_of_apps_is_reported_by_index() -> None:
    doc = {
        "apps": [
            {"appId": 1, "services": []},
            {"appId": 2, "services": [{"serviceId": 1, "serviceName": "a", "imageName": "A B"}]},
        ]
    }

    assert errors_of(doc) == [
        FieldError("$.apps[1].services[0].imageName", "invalid reference format")
    ]


@pytest.mark.parametrize("name", ["Node-Red", "node red", "-nodered", "nodered-", "", "a" * 65])
def test_an_invalid_service_name_is_reported(name: str) -> None:
    assert errors_of(target_doc(serviceName=name)) == [
        FieldError(f"{SVC_PATH}.serviceName", "must match [a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?")
    ]


@pytest.mark.parametrize("name", ["a", "node-red", "node_red2", "a" * 64])
def test_a_valid_service_name_is_accepted(name: str) -> None:
    assert isinstance(decode_target(encode(target_doc(serviceName=name))), Target)


def test_config_image_must_equal_image_name_when_given() -> None:
    assert errors_of(with_config(image="other:1")) == [
        FieldError(f"{SVC_PATH}.config.image", "must equal imageName when given")
    ]
    assert isinstance(decode_target(encode(with_config(image=IMAGE))), Target)


def test_every_semantic_error_of_a_service_is_reported_at_once() -> None:
    doc = target_doc(
        serviceName="Bad Name",
        imageName="BAD IMAGE",
        config={
            "ports": ["1880:1880", "http"],
            "volumes": ["data", "x:y", "ab:/b:ro"],
            "environment": {"": "x", "A=B": "y", "OK": "z"},
            "labels": {"io.fleet-agent.service": "x", "team": "ops"},
        },
    )

    assert errors_of(doc) == [
        FieldError(f"{SVC_PATH}.serviceName", "must match [a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?"),
        FieldError(f"{SVC_PATH}.imageName", "invalid reference format"),
        FieldError(f"{SVC_PATH}.config.ports[1]", "invalid port mapping 'http'"),
        FieldError(f"{SVC_PATH}.config.volumes[0]", "invalid volume 'data'"),
        FieldError(f"{SVC_PATH}.config.volumes[1]", "invalid volume 'x:y'"),
        FieldError(f"{SVC_PATH}.config.environment.", "invalid variable name: empty"),
        FieldError(f"{SVC_PATH}.config.environment.A=B", "invalid variable name: it holds '='"),
        FieldError(
            f"{SVC_PATH}.config.labels.io.fleet-agent.service",
            "io.fleet-agent.* labels are reserved",
        ),
    ]


@pytest.mark.parametrize(
    "port",
    [
        "80",
        "1880:1880",
        "5683:5683/udp",
        "9000:9000/sctp",
        "127.0.0.1:8080:80",
        "127.0.0.1::80",
        "[::1]:8080:80/udp",
        "8000-8002:9000-9002",
    ],
)
def test_compose_style_port_mappings_are_accepted(port: str) -> None:
    assert isinstance(decode_target(encode(with_config(ports=[port]))), Target)


@pytest.mark.parametrize("port", ["http", "80/icmp", "80:", ":80:80:80", "1880:1880/tcp/udp"])
def test_a_malformed_port_mapping_is_reported_with_its_index(port: str) -> None:
    assert errors_of(with_config(ports=["1880:1880", port])) == [
        FieldError(f"{SVC_PATH}.config.ports[1]", f"invalid port mapping {port!r}")
    ]


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        ("1.2.3.4:80", ""),  # an ip with no host part: docker refuses it, spec.parse_port raises
        ("8000-8001:9000", ": ranges differ in length"),  # spec.parse_port raises
        ("9000-8000", ": range 9000-8000 is reversed"),  # spec.parse_port yields no binding
        ("70000:80", ": host port 70000 is out of range 0-65535"),  # the engine refuses it
    ],
)
def test_a_port_mapping_the_container_spec_cannot_express_is_rejected(
    port: str, reason: str
) -> None:
    # Accepting these would make spec.build_spec (called by planner.plan) raise or drop the
    # port on every pass.
    assert errors_of(with_config(ports=[port])) == [
        FieldError(f"{SVC_PATH}.config.ports[0]", f"invalid port mapping {port!r}{reason}")
    ]


@pytest.mark.parametrize("volume", ["data:/data", "/srv/x:/config:ro", "data:/data:rw"])
def test_named_and_bind_volumes_are_accepted(volume: str) -> None:
    assert isinstance(decode_target(encode(with_config(volumes=[volume]))), Target)


@pytest.mark.parametrize("volume", ["data", "data:relative", ":/data", "a:/b:ro:x"])
def test_a_malformed_volume_is_reported_with_its_index(volume: str) -> None:
    assert errors_of(with_config(volumes=[volume])) == [
        FieldError(f"{SVC_PATH}.config.volumes[0]", f"invalid volume {volume!r}")
    ]


def test_rule_errors_of_sound_services_are_reported_beside_schema_errors_of_others() -> None:
    doc = target_doc(imageName="Bad Image!")
    services = doc["apps"]["1001"]["services"]
    services.append({**services[0], "serviceId": "two", "imageName": IMAGE})
    services.append({**services[0], "serviceId": 3, "imageName": IMAGE})

    assert {(e.path, e.message.split(":")[0]) for e in errors_of(doc)} == {
        (f"{SVC_PATH}.imageName", "invalid reference format"),
        ("$.apps.1001.services[1].serviceId", "Expected `int`, got `str`"),
        (
            "$.apps.1001.services[1].serviceName",
            "duplicate service name 'nodered', first at $.apps.1001.services[0]",
        ),
        (
            "$.apps.1001.services[2].serviceName",
            "duplicate service name 'nodered', first at $.apps.1001.services[0]",
        ),
    }
