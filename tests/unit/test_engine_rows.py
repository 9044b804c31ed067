"""The container list is decoded straight into Containers: only the fields the agent reads."""

from __future__ import annotations

import json

import msgspec
import pytest

from fleet_agent.engine_rows import containers
from fleet_agent.runtime import Container
from fleet_agent.spec import LABEL_CONFIG_HASH, LABEL_SERVICE


def _row(**fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "Id": "abc",
        "Names": ["/fleet.dev.web"],
        "Image": "app:1",
        "State": "running",
        "Status": "Up 3 seconds",
        "Labels": {LABEL_SERVICE: "web", LABEL_CONFIG_HASH: "h1", "other": "x"},
        "Ports": [],
        "Mounts": [{"Type": "volume"}],
        "NetworkSettings": {"Networks": {"none": {"IPAddress": ""}}},
    }
    row.update(fields)
    return row


def test_a_listed_container_keeps_its_id_name_service_hash_image_and_state() -> None:
    listed = containers(json.dumps([_row()]).encode())

    assert listed == [Container("abc", "fleet.dev.web", "web", "h1", "app:1", "running")]


def test_an_exited_container_carries_the_exit_code_from_its_status_line() -> None:
    row = _row(State="exited", Status="Exited (137) 2 minutes ago")

    assert containers(json.dumps([row]).encode())[0].exit_code == 137


def test_missing_or_null_fields_fall_back_as_the_engine_means_them() -> None:
    row = {"Id": "abc", "Names": None, "Image": None, "State": None, "Labels": None}

    listed = containers(json.dumps([row]).encode())

    assert listed == [Container("abc", "abc", None, None, "", "unknown")]


@pytest.mark.parametrize("body", [b"", b"{", b'{"Id": "abc"}', b'[{"Names": []}]'])
def test_an_unreadable_list_raises_a_decode_error_not_anything_else(body: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        containers(body)
