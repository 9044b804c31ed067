"""A service's config is refused at the door (400 with its path) when the engine would refuse it,
instead of a StartFailure loop: ports, host IPs, volume modes, environment, arguments."""

from __future__ import annotations

from typing import Any

import pytest

from fleet_agent.model import FieldError, Target
from fleet_agent.validate import MAX_BINDINGS, decode_target

from .factories import encode, target_doc

CONFIG = "$.apps.1001.services[0].config"


def errors_of(**config: Any) -> list[FieldError]:
    result = decode_target(encode(target_doc(config=config)))
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return result


def accepted(**config: Any) -> bool:
    return isinstance(decode_target(encode(target_doc(config=config))), Target)


# Arabic-Indic digits, fullwidth digits and letters, a superscript two
@pytest.mark.parametrize(
    "port",
    [
        "\u0668\u0660:\u0668\u0660",
        "80:\u0668\u0660",
        "\uff18\uff10",
        "1880:1880/\uff55dp",
        "\u00b2",
    ],
)
def test_ports_with_non_ascii_digits_are_refused(port: str) -> None:
    assert errors_of(ports=[port]) == [
        FieldError(f"{CONFIG}.ports[0]", f"invalid port mapping {port!r}")
    ]


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        ("999.999.999.999:80:80", "invalid host IP '999.999.999.999'"),
        ("1.2.3:80:80", "invalid host IP '1.2.3'"),
        ("01.2.3.4:80:80", "invalid host IP '01.2.3.4'"),
        ("[::g]:80:80", "invalid host IP '::g'"),
        ("[fe80::1%eth0]:80:80", "invalid host IP 'fe80::1%eth0'"),
        ("::1:8080:80", "an IPv6 host IP goes in brackets: [::1]"),
    ],
)
def test_a_host_ip_the_engine_cannot_bind_is_refused(port: str, reason: str) -> None:
    assert errors_of(ports=[port]) == [
        FieldError(f"{CONFIG}.ports[0]", f"invalid port mapping {port!r}: {reason}")
    ]


@pytest.mark.parametrize(
    "port",
    ["0.0.0.0:80:80", "255.255.255.255::80", "[::]:80:80", "[2001:db8::1]:53:53/udp", "[::1]::80"],
)
def test_ipv4_and_bracketed_ipv6_host_ips_are_accepted(port: str) -> None:
    assert accepted(ports=[port])


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        ("0", "port 0 is out of range 1-65535"),
        ("65536:80", "host port 65536 is out of range 0-65535"),
        ("80-79", "range 80-79 is reversed"),
        ("8000-8001:9000-9002", "ranges differ in length"),
    ],
)
def test_port_numbers_and_ranges_are_checked_arithmetically(port: str, reason: str) -> None:
    assert errors_of(ports=[port]) == [
        FieldError(f"{CONFIG}.ports[0]", f"invalid port mapping {port!r}: {reason}")
    ]


def test_bindings_are_counted_across_a_services_ports_up_to_the_cap() -> None:
    half = MAX_BINDINGS // 2
    at_cap = [f"1-{half}", f"{half + 1}-{MAX_BINDINGS}/udp"]

    assert accepted(ports=at_cap)
    assert errors_of(ports=[*at_cap, "9999"]) == [
        FieldError(
            f"{CONFIG}.ports[2]",
            f"{MAX_BINDINGS + 1} port bindings exceed the limit of {MAX_BINDINGS} per service",
        )
    ]


@pytest.mark.parametrize(
    "volume",
    [
        "data:/data:ro",
        "data:/data:rw,nocopy",
        "data:/data:z",
        "/srv/x:/x:Z",
        "/srv/x:/x:ro,rshared",
        "/srv/x:/x:rw,z,slave",
        "/srv/x:/x:cached",
        "my_vol.1-a:/data",
    ],
)
def test_volume_modes_the_engine_knows_are_accepted(volume: str) -> None:
    assert accepted(volumes=[volume])


@pytest.mark.parametrize(
    ("volume", "reason"),
    [
        ("data:/data:rx", "unknown mode 'rx'"),
        ("data:/data:ro,rw", "more than one read-write mode in 'ro,rw'"),
        ("data:/data:z,Z", "more than one label mode in 'z,Z'"),
        ("/srv/x:/x:shared,slave", "more than one propagation mode in 'shared,slave'"),
        ("data:/data:", "unknown mode ''"),
        ("data:/data:ro,", "unknown mode ''"),
        ("data:/data:shared", "propagation modes apply to bind mounts only"),
        ("/srv/x:/x:nocopy", "nocopy applies to named volumes only"),
        ("data:/", "the destination cannot be /"),
        ("data:/a/..", "the destination cannot be /"),
        ("d:/data", "invalid volume name 'd'"),
        ("da ta:/data", "invalid volume name 'da ta'"),
        ("./here:/x", "invalid volume name './here'"),  # relative: the engine refuses it too
        ("/srv/\x00x:/data", "NUL in a path"),
        ("data:/da\x00ta", "NUL in a path"),
    ],
)
def test_a_volume_the_engine_would_refuse_is_refused_with_the_reason(
    volume: str, reason: str
) -> None:
    assert errors_of(volumes=[volume]) == [
        FieldError(f"{CONFIG}.volumes[0]", f"invalid volume {volume!r}: {reason}")
    ]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "invalid variable name: empty"),
        ("A=B", "invalid variable name: it holds '='"),
        ("A\x00B", "invalid variable name: it holds NUL"),
    ],
)
def test_environment_names_are_what_the_engine_accepts(key: str, message: str) -> None:
    assert errors_of(environment={key: "x", "OK": "y"}) == [
        FieldError(f"{CONFIG}.environment.{key}", message)
    ]


def test_nul_in_an_environment_value_or_an_argument_is_refused() -> None:
    assert errors_of(
        environment={"A": "x\x00y"}, command=["sh", "-c\x00"], entrypoint=["\x00"]
    ) == [
        FieldError(f"{CONFIG}.command[1]", "NUL in an argument"),
        FieldError(f"{CONFIG}.entrypoint[0]", "NUL in an argument"),
        FieldError(f"{CONFIG}.environment.A", "NUL in a value"),
    ]


def test_unicode_names_and_values_without_nul_are_accepted() -> None:
    assert accepted(environment={"GRÜSSE": "schöne Grüße", "_x1": ""}, command=["echo", "∑"])
