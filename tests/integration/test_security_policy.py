"""The device policy, named volumes and signed targets against the real engine."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import docker
import msgspec
import pytest

from fleet_agent.operator.keys import generate, sign
from tests.integration.conftest import Services
from tests.integration.helpers import (
    AgentProcess,
    by_service,
    containers_of,
    service,
    target,
    wait_for,
)

SLEEP = ["sh", "-c", "exec sleep 3600"]
SVC = "$.apps.1001.services[0]"


def _ack_after(agent: AgentProcess, previous: Any) -> dict[str, Any]:
    return wait_for(lambda: (a := agent.ack()) != previous and a, what="a new ack")


def _policy(agent: AgentProcess, text: str) -> Path:
    path = agent.workdir / "policy.toml"
    path.write_text(text)
    agent.env["FLEET_AGENT_POLICY_FILE"] = str(path)
    return path


def _forbidden(srv: Path) -> list[tuple[str, dict[str, Any], str]]:
    return [
        ("privileged", {"privileged": True}, "config.privileged"),
        (
            "docker.sock",
            {"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]},
            "config.volumes[0]",
        ),
        ("root bind", {"volumes": ["/:/host"]}, "config.volumes[0]"),
        ("/etc bind", {"volumes": ["/etc:/host-etc:ro"]}, "config.volumes[0]"),
        ("bind via ..", {"volumes": [f"{srv}/../../../etc:/x"]}, "config.volumes[0]"),
        ("bind via symlink", {"volumes": [f"{srv}/to-etc:/x"]}, "config.volumes[0]"),
        ("unlisted registry", {"image": "registry.example.com/app:1"}, "imageName"),
        ("unlisted device", {"devices": ["/dev/mem"]}, "config.devices[0]"),
        ("extra capability", {"capAdd": ["SYS_ADMIN"]}, "config.capAdd[0]"),
        ("host network", {"networkMode": "host"}, "config.networkMode"),
        (
            "other device",
            {"networkMode": "container:fleet.other-device.app"},
            "config.networkMode",
        ),
    ]


def test_forbidden_targets_are_refused_with_403_and_their_path_and_change_nothing(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str, tmp_path: Path
) -> None:
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / "to-etc").symlink_to("/etc")
    registry = services.registry
    _policy(
        agent,
        f'registries = ["{registry}"]\nbind_prefixes = ["{srv}"]\ndevices = ["/dev/null"]\n'
        'cap_add = ["NET_ADMIN"]\ncontainer_network = true\n',
    )
    agent.set_target(target(1, service("app", services.image1, 1, SLEEP)))
    agent.start()
    running = agent.wait_service("app", lambda s: s["serviceStatus"] == "running")
    ack = agent.ack()
    for version, (name, change, path) in enumerate(_forbidden(srv), start=2):
        image = change.pop("image", services.image1)
        bad = service("app", image, 1, SLEEP, **change)
        agent.set_target(target(version, bad))
        ack = _ack_after(agent, ack)
        assert (ack["code"], ack["version"], ack["accepted"]) == (403, version, False), name
        assert [e["path"] for e in ack["errors"]] == [f"{SVC}.{path}"], (name, ack)
    rows = containers_of(api, device_id)
    assert [r["Id"] for r in rows] == [running["containerId"]]
    assert rows[0]["State"] == "running"
    assert agent.status()["state"]["targetVersion"] == 1  # type: ignore[index]


def test_what_the_policy_allows_runs_with_exactly_those_settings(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str, tmp_path: Path
) -> None:
    srv = tmp_path / "srv"
    (srv / "conf").mkdir(parents=True)
    _policy(
        agent,
        f'bind_prefixes = ["{srv}"]\nprivileged = true\ndevices = ["/dev/null"]\n'
        'cap_add = ["NET_ADMIN"]\ncontainer_network = true\n',
    )
    main = service(
        "main",
        services.image1,
        1,
        SLEEP,
        privileged=True,
        devices=["/dev/null:/dev/fake-serial:rw"],
        capAdd=["net_admin"],
        user="1000:1000",
        readOnly=True,
        memLimit="64m",
        cpus=0.5,
        volumes=[f"{srv}/conf:/conf:ro", "data:/data"],
    )
    side = service("side", services.image1, 2, SLEEP)
    side["config"]["networkMode"] = "container:main"
    agent.set_target(target(1, main, side))
    agent.start()
    assert agent.ack() is None or agent.ack()["code"] == 200  # type: ignore[index]
    for name in ("main", "side"):
        agent.wait_service(name, lambda s: s["serviceStatus"] == "running", timeout=60)
    grouped = by_service(api, device_id)
    host = api.inspect_container(grouped["main"][0]["Id"])
    config = host["HostConfig"]
    assert config["Privileged"] is True
    assert config["Devices"] == [
        {
            "PathOnHost": "/dev/null",
            "PathInContainer": "/dev/fake-serial",
            "CgroupPermissions": "rw",
        }
    ]
    assert config["CapAdd"] == ["NET_ADMIN"]
    assert config["ReadonlyRootfs"] is True
    assert (config["Memory"], config["NanoCpus"]) == (64 * 1024 * 1024, 500_000_000)
    assert host["Config"]["User"] == "1000:1000"
    assert sorted(config["Binds"]) == sorted(
        [f"{srv}/conf:/conf:ro", f"fleet.{device_id}.data:/data"]
    )
    joined = api.inspect_container(grouped["side"][0]["Id"])["HostConfig"]["NetworkMode"]
    # the engine keeps the name, or the id when it resolved the name at creation
    assert joined in (f"container:fleet.{device_id}.main", f"container:{host['Id']}")
    api.remove_container(grouped["side"][0]["Id"], force=True)
    api.remove_container(grouped["main"][0]["Id"], force=True, v=True)
    api.remove_volume(f"fleet.{device_id}.data")


def _exec(api: docker.APIClient, container: str, *cmd: str) -> str:
    run = api.exec_create(container, list(cmd))
    return str(api.exec_start(run["Id"]).decode().strip())


def test_two_devices_on_one_engine_keep_separate_data_in_the_same_named_volume(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str, tmp_path: Path
) -> None:
    other_id = f"{device_id}-b"
    other = AgentProcess(tmp_path / "b", other_id, services.docker_host)
    (tmp_path / "b").mkdir()
    write = ["sh", "-c", '[ -f /data/who ] || echo "$ME" > /data/who; exec sleep 3600']
    try:
        for proc, me in ((agent, device_id), (other, other_id)):
            proc.set_target(
                target(
                    1,
                    service(
                        "app",
                        services.image1,
                        1,
                        write,
                        environment={"ME": me},
                        volumes=["data:/data"],
                    ),
                )
            )
            proc.start()
        for proc, me in ((agent, device_id), (other, other_id)):
            status = proc.wait_service("app", lambda s: s["serviceStatus"] == "running")
            assert _exec(api, status["containerId"], "cat", "/data/who") == me
            volume = api.inspect_volume(f"fleet.{me}.data")
            assert volume["Labels"] == {
                "io.fleet-agent.managed": "true",
                "io.fleet-agent.device": me,
                "io.fleet-agent.volume": "data",
            }
        # The service leaves one device's target: its volume stays (data is never deleted by
        # a target), and the other device's container and data are untouched.
        agent.set_target(target(2))
        wait_for(lambda: not containers_of(api, device_id), what="app removed")
        assert api.inspect_volume(f"fleet.{device_id}.data")
        status = other.wait_service("app", lambda s: s["serviceStatus"] == "running")
        assert _exec(api, status["containerId"], "cat", "/data/who") == other_id
    finally:
        other.stop()
        for row in containers_of(api, other_id) + containers_of(api, device_id):
            api.remove_container(row["Id"], force=True)
        for me in (device_id, other_id):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_volume(f"fleet.{me}.data")


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    return {kid: generate(kid) for kid in ("cloud-1", "intruder")}


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["apps"]["1001"]["services"][0]["config"]["privileged"] = False
    claims["apps"]["1001"]["services"][0]["config"]["command"] = ["sh", "-c", "evil"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return ".".join([header, forged, signature])


def test_only_a_valid_fresh_signature_for_this_device_is_taken(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str, keys: Any
) -> None:
    trusted = agent.workdir / "trusted.jwks"
    trusted.write_bytes(msgspec.json.encode({"keys": [keys["cloud-1"][1]]}))
    agent.env.update(FLEET_AGENT_TRUSTED_KEYS=str(trusted), FLEET_AGENT_REQUIRE_SIGNED="true")
    good, intruder = keys["cloud-1"][0], keys["intruder"][0]

    def doc(version: int) -> dict[str, Any]:
        return target(
            version, service("app", services.image1, 1, SLEEP, environment={"V": str(version)})
        )

    cases = [
        ("valid", sign(doc(2), good, device_id, None), 200),
        ("wrong key", sign(doc(3), intruder, device_id, None), 403),
        ("tampered", _tampered(sign(doc(4), good, device_id, None)), 403),
        ("other device", sign(doc(5), good, f"{device_id}-x", None), 403),
        ("replayed older", sign(doc(1), good, device_id, None), 409),
        ("expired", sign(doc(6), good, device_id, 1_000_000_000), 403),
        ("unsigned", json.dumps(doc(7)), 403),
    ]
    agent.start()
    ack = None
    for name, payload, code in cases:
        agent.set_target(payload)
        ack = _ack_after(agent, ack)
        assert (ack["code"], ack["accepted"]) == (code, code == 200), (name, ack)
        if name == "valid":
            agent.wait_service("app", lambda s: s["serviceStatus"] == "running")
    [row] = containers_of(api, device_id)
    assert "V=2" in api.inspect_container(row["Id"])["Config"]["Env"]
    assert agent.status()["state"]["targetVersion"] == 2  # type: ignore[index]
