"""Input that once went unanswered or stalled the agent: deep nesting, duplicate keys, numbers
beyond what JSON tools hold exactly, too many services. Each gets a 400 with its path."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from fleet_agent.intake import decide, version_of
from fleet_agent.jsondoc import MAX_CONTAINERS
from fleet_agent.model import FieldError, Target
from fleet_agent.store import TargetStore
from fleet_agent.validate import MAX_DEPTH, MAX_ERRORS, MAX_SAFE_INT, decode_target

from .factories import T0, encode, target_doc

SVC = "$.apps.1001.services[0]"


def errors_of(payload: bytes, **limits: Any) -> list[FieldError]:
    result = decode_target(payload, **limits)
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return result


def deep(levels: int) -> bytes:
    return b'{"apps": ' + b"[" * levels + b"]" * levels + b"}"


def test_a_2_kb_target_nested_1000_levels_deep_is_a_400_not_a_recursion_error() -> None:
    payload = deep(1000)
    assert len(payload) < 2100

    decision = decide(payload, None, T0)

    assert (decision.ack.code, decision.target) == (400, None)
    assert decision.ack.errors == [
        FieldError("$", f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
    ]


def test_nesting_of_a_hundred_thousand_levels_is_refused_the_same_way() -> None:
    assert errors_of(b"[" * 100_000 + b"]" * 100_000) == [
        FieldError("$", f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
    ]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    doc = target_doc(config={"command": ["echo", "[" * 500 + '{"\\"' + "]" * 500]})

    assert isinstance(decode_target(encode(doc)), Target)


def test_nesting_within_the_depth_limit_is_reported_as_a_schema_error() -> None:
    doc = target_doc(config={"labels": {"a": [[[[[]]]]]}})

    assert errors_of(encode(doc)) == [
        FieldError(f"{SVC}.config.labels.a", "Expected `str`, got `array`")
    ]


def test_the_version_of_a_deeply_nested_payload_is_unknown_rather_than_an_error() -> None:
    assert version_of(b'{"version": 3, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}") is None


def test_a_duplicate_key_is_rejected_with_its_path_wherever_it_is() -> None:
    payload = (
        b'{"version": 1, "apps": {"1001": {"appId": 1001, "services": [{"serviceId": 1, '
        b'"serviceName": "a", "imageName": "a", "serviceName": "b", '
        b'"config": {"environment": {"A": "1", "A": "2"}}}]}}, "version": 2}'
    )

    assert errors_of(payload) == [
        FieldError("$.version", "duplicate key"),
        FieldError(f"{SVC}.serviceName", "duplicate key"),
        FieldError(f"{SVC}.config.environment.A", "duplicate key"),
    ]


def test_a_duplicate_app_key_is_rejected_instead_of_the_last_app_silently_winning() -> None:
    payload = b'{"apps": {"1": {"appId": 1}, "1": {"appId": 1, "appName": "x"}}}'

    assert errors_of(payload) == [FieldError("$.apps.1", "duplicate key")]


def test_duplicate_app_ids_in_a_list_of_apps_are_rejected_where_they_repeat() -> None:
    doc = {"apps": [{"appId": 5}, {"appId": 6}, {"appId": 5}]}

    assert errors_of(encode(doc)) == [
        FieldError("$.apps[2].appId", "duplicate appId 5, first at $.apps[0]")
    ]


@pytest.mark.parametrize(
    ("field", "path"),
    [("version", "$.version"), ("appId", "$.apps[0].appId"), ("serviceId", None)],
)
def test_numbers_beyond_2_to_the_53_minus_1_are_rejected(field: str, path: str | None) -> None:
    service = {"serviceId": 1, "serviceName": "a", "imageName": "a"}
    doc: dict[str, Any] = {"version": 1, "apps": [{"appId": 1, "services": [service]}]}
    for huge in (MAX_SAFE_INT + 1, 10**30):
        if field == "version":
            doc["version"] = huge
        elif field == "appId":
            doc["apps"][0]["appId"] = huge
        else:
            service["serviceId"] = huge
        where = path or "$.apps[0].services[0].serviceId"
        assert errors_of(encode(doc)) == [FieldError(where, f"Expected `int` <= {MAX_SAFE_INT}")]


def test_numbers_up_to_2_to_the_53_minus_1_are_accepted() -> None:
    doc = {
        "version": MAX_SAFE_INT,
        "apps": [
            {
                "appId": MAX_SAFE_INT,
                "services": [{"serviceId": MAX_SAFE_INT, "serviceName": "a", "imageName": "a"}],
            }
        ],
    }

    assert isinstance(decode_target(encode(doc)), Target)


def test_a_version_of_10_to_the_400_is_a_400_and_never_poisons_the_stored_version(
    tmp_path: Path,
) -> None:
    store = TargetStore(tmp_path)
    huge = b'{"version": 1' + b"0" * 400 + b', "apps": {}}'

    rejected = store.offer(huge, T0)
    normal = store.offer(encode(target_doc(8)), T0)

    assert (rejected.ack.code, rejected.ack.version) == (400, None)
    assert [e.path for e in rejected.ack.errors] == ["$.version"]
    assert (normal.ack.code, normal.ack.accepted) == (200, True)
    assert TargetStore(tmp_path).load() == normal.target


def test_a_number_too_long_to_read_at_all_is_a_400() -> None:
    payload = b'{"apps": {}, "version": 1' + b"0" * 5000 + b"}"

    assert [e.path for e in errors_of(payload)] == ["$"]


def test_services_beyond_the_cap_are_rejected_at_the_first_one_over_it() -> None:
    services = [{"serviceId": i, "serviceName": f"s{i}", "imageName": "a"} for i in range(4)]
    doc = {"apps": {"1": {"appId": 1, "services": services[:2]}, "2": {"appId": 2}}}
    doc["apps"]["3"] = {"appId": 3, "services": services[2:]}

    assert errors_of(encode(doc), max_services=3) == [
        FieldError("$.apps.3.services[1]", "more than 3 services in one target")
    ]
    assert isinstance(decode_target(encode(doc), max_services=4), Target)


def test_the_default_cap_is_100_services() -> None:
    def doc(count: int) -> bytes:
        services = [
            {"serviceId": i, "serviceName": f"s{i}", "imageName": "a"} for i in range(count)
        ]
        return encode({"apps": [{"appId": 1, "services": services}]})

    assert isinstance(decode_target(doc(100)), Target)
    assert [e.path for e in errors_of(doc(101))] == ["$.apps[0].services[100]"]


def test_an_ack_lists_at_most_max_errors_and_says_that_more_were_left_out() -> None:
    doc = target_doc(config={"labels": {f"k{i}": i for i in range(MAX_ERRORS * 3)}})

    errors = errors_of(encode(doc))

    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1] == FieldError("$", f"more errors not listed after the first {MAX_ERRORS}")


def test_a_huge_port_range_is_checked_without_expanding_it() -> None:
    doc = target_doc(config={"ports": ["1-65535:1-65535"] * 100})
    payload = encode(doc)

    tracemalloc.start()
    try:
        errors = errors_of(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 2_000_000  # expanding would hold 100 x 65,535 bindings (hundreds of MB)
    assert errors == [
        FieldError(
            f"{SVC}.config.ports[0]", "65535 port bindings exceed the limit of 1024 per service"
        )
    ]


def test_apps_beyond_the_cap_are_rejected_at_the_first_one_over_it() -> None:
    apps = {str(i): {"appId": i} for i in range(1, 5)}

    assert errors_of(encode({"apps": apps}), max_services=3) == [
        FieldError("$.apps.4", "more than 3 apps in one target")
    ]
    assert errors_of(encode({"apps": list(apps.values())}), max_services=3) == [
        FieldError("$.apps[3]", "more than 3 apps in one target")
    ]


@pytest.mark.parametrize("payload", [b"null", b"5", b'"x"', b"true", b"[]", b'"[[[{{{"'])
def test_a_document_that_is_not_an_object_is_rejected_at_the_root(payload: bytes) -> None:
    assert [e.path for e in errors_of(payload)] == ["$"]


def test_more_arrays_and_objects_than_any_target_needs_are_refused_before_decoding() -> None:
    payload = encode({"apps": {}, "x": [[] for _ in range(MAX_CONTAINERS)]})

    assert errors_of(payload) == [
        FieldError(
            "$",
            f"invalid JSON: {MAX_CONTAINERS + 3} arrays and objects, more than {MAX_CONTAINERS}",
        )
    ]


def test_a_higher_services_cap_allows_the_arrays_and_objects_its_services_need() -> None:
    services = [
        {"serviceId": i, "serviceName": f"s{i}", "imageName": "a", "config": {"ports": ["80"]}}
        for i in range(4000)
    ]  # 3 arrays and objects each: 12,000 in all
    payload = encode({"apps": [{"appId": 1, "services": services}]})

    assert [e.path for e in errors_of(payload)] == ["$"]
    assert isinstance(decode_target(payload, max_services=4000), Target)


def test_a_device_poisoned_before_versions_were_bounded_takes_normal_versions_again(
    tmp_path: Path,
) -> None:
    # What an earlier agent persisted after version 10^400 and then a versionless target.
    (tmp_path / "target.json").write_bytes(
        b'{"target": {"apps": {}}, "highestVersion": 1' + b"0" * 400 + b"}"
    )
    store = TargetStore(tmp_path)
    store.load()

    decision = store.offer(encode(target_doc(8)), T0)

    assert (decision.ack.code, decision.ack.version) == (200, 8)
