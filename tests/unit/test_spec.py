"""Container specs, config hashes and compose-style port mappings."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest

from fleet_agent.model import App, DesiredService, Target
from fleet_agent.spec import (
    ContainerSpec,
    PortBinding,
    build_spec,
    config_hash,
    container_name,
    desired_services,
    parse_port,
)

from .factories import APP_ID, DEVICE, IMAGE, desired, service


def hash_of(**config: Any) -> str:
    return config_hash(APP_ID, service(**config))


BASE: dict[str, Any] = {
    "ports": ["1880:1880", "5683:5683/udp"],
    "volumes": ["data:/data", "/srv/x:/config:ro"],
    "environment": {"A": "1", "TZ": "UTC"},
    "labels": {"team": "ops", "tier": "edge"},
    "command": ["sh", "-c", "exec node-red"],
}


def test_a_config_hash_is_a_sha256_hex_digest() -> None:
    digest = hash_of(**BASE)

    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")


def test_reordering_ports_or_environment_keeps_the_config_hash() -> None:
    reordered = {
        "ports": ["5683:5683/udp", "1880:1880"],
        "volumes": ["/srv/x:/config:ro", "data:/data"],
        "environment": {"TZ": "UTC", "A": "1"},
        "labels": {"tier": "edge", "team": "ops"},
        "command": ["sh", "-c", "exec node-red"],
    }

    assert hash_of(**reordered) == hash_of(**BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"ports": ["1880:1881", "5683:5683/udp"]},
        {"environment": {"A": "2", "TZ": "UTC"}},
        {"volumes": ["data:/data"]},
        {"labels": {"team": "dev", "tier": "edge"}},
        {"command": ["-c", "sh", "exec node-red"]},
        {"entrypoint": ["/init"]},
        {"network_mode": "host"},
        {"restart": "always"},
    ],
)
def test_a_real_config_change_changes_the_config_hash(change: dict[str, object]) -> None:
    assert hash_of(**(BASE | change)) != hash_of(**BASE)


def test_the_image_the_service_id_and_the_app_id_are_part_of_the_config_hash() -> None:
    base = service()

    assert config_hash(APP_ID, service(image="nodered/node-red:2.0")) != config_hash(APP_ID, base)
    assert config_hash(APP_ID, service(service_id=2)) != config_hash(APP_ID, base)
    assert config_hash(APP_ID + 1, base) != config_hash(APP_ID, base)


def test_the_config_hash_is_the_sha256_of_the_key_sorted_canonical_json() -> None:
    # Pinned: the hash lives in container labels, so changing the canonical form would
    # recreate every container of every device on agent upgrade.
    canonical = (
        b'{"appId":1,"command":null,"entrypoint":null,"environment":{},"image":"a:1",'
        b'"labels":{},"networkMode":null,"ports":[],"restart":"unless-stopped",'
        b'"serviceId":1,"volumes":[]}'
    )

    assert config_hash(1, service("a", "a:1", 1)) == hashlib.sha256(canonical).hexdigest()


def test_no_target_means_no_desired_services() -> None:
    assert desired_services(None) == []


def test_desired_services_flatten_every_app_with_its_id_name_and_hash() -> None:
    a, b, c = service("a", "a:1"), service("b", "b:1", 2), service("c", "c:1")
    target = Target({"1": App(1, "one", [a, b]), "2": App(2, "two", [c])}, 3)

    assert desired_services(target) == [
        DesiredService(1, "one", a, config_hash(1, a)),
        DesiredService(1, "one", b, config_hash(1, b)),
        DesiredService(2, "two", c, config_hash(2, c)),
    ]
    assert [d.name for d in desired_services(target)] == ["a", "b", "c"]


def test_desired_services_read_a_list_of_apps_too() -> None:
    a = service("a", "a:1")

    assert desired_services(Target([App(9, "nine", [a])])) == [
        DesiredService(9, "nine", a, config_hash(9, a))
    ]


def test_each_service_has_one_fixed_container_name_per_device() -> None:
    assert container_name("dev-001", "nodered") == "fleet.dev-001.nodered"
    assert container_name("dev-002", "nodered") == "fleet.dev-002.nodered"


def test_container_names_of_different_devices_never_clash_whatever_the_underscores() -> None:
    assert container_name("a", "b_c") != container_name("a_b", "c")


def test_a_spec_carries_the_service_config_and_every_fleet_agent_label() -> None:
    svc = desired(
        command=["sh", "-c", "exec node-red"],
        entrypoint=["/init"],
        environment={"TZ": "UTC", "A": "1"},
        ports=["1880:1880", "5683:5683/udp"],
        volumes=["data:/data", "/srv/nodered:/config:ro"],
        network_mode="bridge",
        labels={"team": "ops"},
    )

    assert build_spec(DEVICE, svc) == ContainerSpec(
        name="fleet.dev-001.nodered",
        image=IMAGE,
        command=["sh", "-c", "exec node-red"],
        entrypoint=["/init"],
        environment=["A=1", "TZ=UTC"],
        ports=[
            PortBinding(1880, "tcp", None, 1880),
            PortBinding(5683, "udp", None, 5683),
        ],
        binds=["fleet.dev-001.data:/data", "/srv/nodered:/config:ro"],
        network_mode="bridge",
        volumes={
            "fleet.dev-001.data": {
                "io.fleet-agent.managed": "true",
                "io.fleet-agent.device": "dev-001",
                "io.fleet-agent.volume": "data",
            }
        },
        labels={
            "team": "ops",
            "io.fleet-agent.managed": "true",
            "io.fleet-agent.device": "dev-001",
            "io.fleet-agent.service": "nodered",
            "io.fleet-agent.app-id": "1001",
            "io.fleet-agent.service-id": "1",
            "io.fleet-agent.config-hash": svc.config_hash,
        },
    )


def test_named_volumes_are_the_devices_own_and_binds_stay_as_given() -> None:
    svc = desired(volumes=["data:/data:ro", "/srv/x:/x"])

    assert build_spec("dev-a", svc).binds == ["fleet.dev-a.data:/data:ro", "/srv/x:/x"]
    assert build_spec("dev-b", svc).binds == ["fleet.dev-b.data:/data:ro", "/srv/x:/x"]


def test_host_keys_reach_the_spec_in_the_engines_units() -> None:
    svc = desired(
        privileged=True,
        devices=["/dev/ttyUSB0:/dev/ttyS0:rw"],
        cap_add=["net_admin", "CAP_SYS_TIME"],
        user="1000:1000",
        read_only=True,
        mem_limit="64m",
        cpus=0.5,
    )

    spec = build_spec(DEVICE, svc)

    assert (spec.privileged, spec.devices, spec.cap_add) == (
        True,
        ["/dev/ttyUSB0:/dev/ttyS0:rw"],
        ["NET_ADMIN", "SYS_TIME"],
    )
    assert (spec.user, spec.read_only, spec.mem_limit, spec.nano_cpus) == (
        "1000:1000",
        True,
        64 * 1024 * 1024,
        500_000_000,
    )


def test_a_container_network_names_the_devices_own_service_container() -> None:
    assert build_spec(DEVICE, desired(network_mode="container:db")).network_mode == (
        "container:fleet.dev-001.db"
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("privileged", True),
        ("devices", ["/dev/ttyUSB0"]),
        ("cap_add", ["NET_ADMIN"]),
        ("user", "1000"),
        ("read_only", True),
        ("mem_limit", "64m"),
        ("cpus", 0.5),
    ],
)
def test_each_host_key_changes_the_config_hash(key: str, value: Any) -> None:
    assert hash_of(**{key: value}) != hash_of()


def test_unset_host_keys_leave_the_hash_as_before_they_existed() -> None:
    svc = service(**BASE)
    config = svc.config
    canonical = {
        "appId": APP_ID,
        "serviceId": svc.service_id,
        "image": svc.image_name,
        "command": config.command,
        "entrypoint": config.entrypoint,
        "environment": config.environment,
        "ports": sorted(config.ports),
        "volumes": sorted(config.volumes),
        "networkMode": config.network_mode,
        "restart": config.restart,
        "labels": config.labels,
    }
    expected = hashlib.sha256(msgspec.json.encode(canonical, order="sorted")).hexdigest()

    assert config_hash(APP_ID, svc) == expected


def test_a_user_label_can_never_override_a_fleet_agent_label() -> None:
    svc = desired(labels={"io.fleet-agent.device": "someone-else", "io.fleet-agent.managed": "no"})

    labels = build_spec(DEVICE, svc).labels

    assert labels["io.fleet-agent.device"] == "dev-001"
    assert labels["io.fleet-agent.managed"] == "true"


def test_a_service_without_config_gets_an_empty_spec_apart_from_labels() -> None:
    spec = build_spec(DEVICE, desired())

    assert (spec.command, spec.entrypoint, spec.environment, spec.ports, spec.binds) == (
        None,
        None,
        [],
        [],
        [],
    )
    assert spec.network_mode is None


@pytest.mark.parametrize(
    ("mapping", "bindings"),
    [
        ("80", [PortBinding(80, "tcp", None, None)]),
        ("1880:1880", [PortBinding(1880, "tcp", None, 1880)]),
        ("8080:80/tcp", [PortBinding(80, "tcp", None, 8080)]),
        ("5683:5683/udp", [PortBinding(5683, "udp", None, 5683)]),
        ("9000/sctp", [PortBinding(9000, "sctp", None, None)]),
        ("127.0.0.1:8080:80", [PortBinding(80, "tcp", "127.0.0.1", 8080)]),
        ("127.0.0.1::80", [PortBinding(80, "tcp", "127.0.0.1", None)]),
        ("[::1]:8080:80/udp", [PortBinding(80, "udp", "::1", 8080)]),
        ("[::1]::80", [PortBinding(80, "tcp", "::1", None)]),
        (
            "8000-8002:9000-9002",
            [
                PortBinding(9000, "tcp", None, 8000),
                PortBinding(9001, "tcp", None, 8001),
                PortBinding(9002, "tcp", None, 8002),
            ],
        ),
        (
            "7000-7001/udp",
            [PortBinding(7000, "udp", None, None), PortBinding(7001, "udp", None, None)],
        ),
    ],
)
def test_port_mappings_are_parsed_as_compose_writes_them(
    mapping: str, bindings: list[PortBinding]
) -> None:
    assert parse_port(mapping) == bindings


def test_port_ranges_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="port ranges differ in length"):
        parse_port("8000-8001:9000-9002")
