"""Target files for `apply`: JSON, YAML and docker-compose, every problem with its path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet_agent.operator import compose, documents
from fleet_agent.validate import decode_target

IMAGE = "127.0.0.1:5000/fleet-test/app:1"


def load(tmp_path: Path, name: str, text: str) -> dict[str, Any]:
    path = tmp_path / name
    path.write_text(text)
    return documents.load(path)


def errors_of(tmp_path: Path, name: str, text: str) -> dict[str, str]:
    with pytest.raises(documents.DocumentError) as caught:
        load(tmp_path, name, text)
    return {e.path: e.message for e in caught.value.errors}


def test_a_yaml_target_with_numeric_app_keys_decodes_like_its_json(tmp_path: Path) -> None:
    doc = load(
        tmp_path,
        "t.yaml",
        f"version: 3\napps:\n  1001:\n    appId: 1001\n    services:\n"
        f"      - {{serviceId: 1, serviceName: web, imageName: '{IMAGE}'}}\n",
    )
    assert list(doc["apps"]) == ["1001"]
    target = decode_target(json.dumps(doc).encode())
    assert not isinstance(target, list) and target.version == 3


def test_a_compose_file_becomes_one_app_with_every_supported_key(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("# c\nexport A=1\nB='two words'\n\n")
    doc = load(
        tmp_path,
        "docker-compose.yml",
        f"""
name: shop
x-fleet: {{appId: 7, version: 12}}
volumes: {{data: }}
services:
  web:
    image: {IMAGE}
    command: sh -c 'echo "$$HOME"; exec sleep 1'
    entrypoint: [/bin/sh]
    environment: {{B: override, N: 3, F: false}}
    env_file: [a.env]
    ports: ["8080:80", 9000]
    volumes: ["data:/data", "/srv/x:/x:ro"]
    restart: always
    labels: [team=ops]
    network_mode: none
  db:
    image: {IMAGE}
""",
    )
    app = doc["apps"]["7"]
    assert doc["version"] == 12 and app["appName"] == "shop" and app["appId"] == 7
    web, db = app["services"]
    assert (web["serviceId"], db["serviceId"]) == (1, 2)
    assert web["config"] == {
        "command": ["sh", "-c", 'echo "$HOME"; exec sleep 1'],
        "entrypoint": ["/bin/sh"],
        "environment": {"A": "1", "B": "override", "N": "3", "F": "false"},
        "ports": ["8080:80", "9000"],
        "volumes": ["data:/data", "/srv/x:/x:ro"],
        "restart": "always",
        "labels": {"team": "ops"},
        "networkMode": "none",
    }
    assert db == {"serviceId": 2, "serviceName": "db", "imageName": IMAGE, "config": {}}
    assert not isinstance(decode_target(json.dumps(doc).encode()), list)


@pytest.mark.parametrize(
    ("text", "path", "needle"),
    [
        ("services:\n  web: {image: x, build: .}\n", "$.services.web.build", "not supported"),
        ("services:\n  web: {image: x, deploy: {}}\n", "$.services.web.deploy", "not supported"),
        ("services:\n  web: {image: x}\nnetworks: {a: {}}\n", "$.networks", "not supported"),
        ("services:\n  web: {build: .}\n", "$.services.web.image", "required"),
        ("services:\n  Web: {image: x}\n", "$.services.Web", "must match"),
        ("services:\n  web: {image: 'UP:per'}\n", "$.services.web.image", ""),
        (
            "services:\n  web: {image: x, ports: [{target: 80}]}\n",
            "$.services.web.ports[0]",
            "long",
        ),
        (
            "services:\n  web: {image: x, volumes: [./d:/d]}\n",
            "$.services.web.volumes[0]",
            "relative",
        ),
        ("services:\n  web: {image: x, restart: 'on-failure:3'}\n", "$.services.web.restart", ""),
        (
            "services:\n  web: {image: x, environment: [A]}\n",
            "$.services.web.environment[0]",
            "KEY",
        ),
        (
            "services:\n  web: {image: x, environment: {A: }}\n",
            "$.services.web.environment.A",
            "shell",
        ),
        (
            "services:\n  web: {image: x, env_file: nope.env}\n",
            "$.services.web.env_file",
            "cannot read",
        ),
        (
            "services:\n  web: {image: x, command: 'a ${B}'}\n",
            "$.services.web.command",
            "interpolation",
        ),
        ("services:\n  web: {image: x, command: 3}\n", "$.services.web.command", "string"),
        ("services:\n  web: {image: x}\nvolumes: {d: {driver: z}}\n", "$.volumes.d", "named"),
        ("services:\n  web: {image: x}\nx-fleet: {appId: -1}\n", "$.x-fleet.appId", "integer"),
        ("services:\n  web: {image: x}\nx-other: 1\n", "$.x-other", "not supported"),
        ("services: {}\n", "$.services", "non-empty"),
    ],
)
def test_every_unsupported_or_bad_compose_key_is_an_error_with_its_path(
    tmp_path: Path, text: str, path: str, needle: str
) -> None:
    errors = errors_of(tmp_path, "compose.yaml", text)
    assert path in errors, errors
    assert needle in errors[path]


def test_all_errors_of_a_compose_file_come_at_once(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        "compose.yml",
        "services:\n  a: {image: x, build: .}\n  b: {image: x, links: []}\n",
    )
    assert set(errors) == {"$.services.a.build", "$.services.b.links"}


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("t.json", "{nope", "invalid JSON"),
        ("t.yaml", "a: [1,\n", "invalid YAML: line"),
        ("t.yaml", "- 1\n", "expected a mapping"),
        ("t.yaml", "when: 2025-01-01\n", "quote it"),
    ],
)
def test_an_unreadable_document_is_one_clear_error(
    tmp_path: Path, name: str, text: str, needle: str
) -> None:
    errors = errors_of(tmp_path, name, text)
    assert any(needle in message for message in errors.values()), errors


def test_a_missing_file_is_an_error_not_an_exception(tmp_path: Path) -> None:
    with pytest.raises(documents.DocumentError, match="1 error"):
        documents.load(tmp_path / "missing.json")


def test_a_target_document_is_not_taken_for_a_compose_file() -> None:
    assert not compose.is_compose({"apps": {}, "services": {}})
    assert compose.is_compose({"services": {}})


@pytest.mark.parametrize("name", ["target.json", "docker-compose.yml"])
def test_the_examples_are_valid_targets(name: str) -> None:
    doc = documents.load(Path(__file__).resolve().parents[2] / "examples" / name)
    assert not isinstance(decode_target(json.dumps(doc).encode()), list)
