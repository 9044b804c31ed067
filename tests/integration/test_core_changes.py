"""Target changes against the real engine: updates, removals, bad input, what is never touched."""

from __future__ import annotations

import json
from typing import Any, cast

import docker

from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for

SLEEP = ["sh", "-c", "exec sleep 3600"]


def _running(agent: AgentProcess, name: str) -> dict[str, Any] | None:
    status = agent.service(name)
    return status if status and status["serviceStatus"] == "running" else None


def test_an_update_to_a_missing_image_leaves_the_old_container_running(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    agent.set_target(target(1, service("app", services.image1, command=SLEEP)))
    agent.start()
    before = wait_for(lambda: _running(agent, "app"), what="app running")

    agent.set_target(target(2, service("app", services.missing_image, command=SLEEP)))
    blocked = wait_for(
        lambda: (s := agent.service("app")) and s["error"] and s["targetVersion"] == 2 and s,
        what="blocked update reported",
    )
    assert blocked["serviceStatus"] == "error"
    assert blocked["error"]["type"] == "ImagePullBackOff"
    assert blocked["containerId"] == before["containerId"]
    assert blocked["runningImage"] == services.image1
    rows = by_service(api, device_id)["app"]
    assert [(r["Id"], r["State"]) for r in rows] == [(before["containerId"], "running")]


def test_removing_a_service_removes_its_container(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    agent.set_target(
        target(
            1,
            service("keep", services.image1, 1, SLEEP),
            service("drop", services.image1, 2, SLEEP),
        )
    )
    agent.start()
    wait_for(lambda: _running(agent, "keep") and _running(agent, "drop"), what="both running")
    kept = by_service(api, device_id)["keep"][0]["Id"]

    agent.set_target(target(2, service("keep", services.image1, 1, SLEEP)))
    wait_for(lambda: "drop" not in by_service(api, device_id), what="drop removed")
    wait_for(lambda: (s := agent.status()) and "drop" not in s["services"], what="status updated")
    assert [r["Id"] for r in by_service(api, device_id)["keep"]] == [kept]


def test_containers_without_this_devices_labels_are_never_touched(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    api.pull(services.image1.rsplit(":", 1)[0], tag="1")
    foreign = [
        api.create_container(
            services.image1,
            SLEEP,
            name=f"{device_id}-unlabelled",
            host_config=api.create_host_config(network_mode="none"),
        ),
        api.create_container(
            services.image1,
            SLEEP,
            name=f"{device_id}-other-device",
            labels={
                "io.fleet-agent.managed": "true",
                "io.fleet-agent.device": "someone-else",
                "io.fleet-agent.service": "app",
            },
            host_config=api.create_host_config(network_mode="none"),
        ),
    ]
    try:
        for created in foreign:
            api.start(created["Id"])
        agent.set_target(target(1, service("app", services.image1, command=SLEEP)))
        agent.start()
        wait_for(lambda: _running(agent, "app"), what="app running")
        agent.set_target(target(2))  # explicit empty target: every managed service goes
        wait_for(lambda: not by_service(api, device_id), what="managed container removed")
        wait_for(lambda: (s := agent.status()) and s["state"]["targetVersion"] == 2)
        for created in foreign:
            assert api.inspect_container(created["Id"])["State"]["Running"] is True
    finally:
        for created in foreign:
            api.remove_container(created["Id"], force=True)


def test_reordering_environment_or_volumes_recreates_nothing(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    env = {"A": "1", "B": "2"}
    data = agent.workdir / "data"
    policy = agent.workdir / "policy.toml"
    policy.write_text(f'bind_prefixes = ["{data}"]\n')  # the default policy allows /srv only
    agent.env["FLEET_AGENT_POLICY_FILE"] = str(policy)
    first = service(
        "app",
        services.image1,
        command=SLEEP,
        environment=env,
        volumes=[f"{data}:/a:ro", f"{data}:/b"],
    )
    agent.set_target(target(1, first))
    agent.start()
    before = wait_for(lambda: _running(agent, "app"), what="app running")
    reordered = service(
        "app",
        services.image1,
        command=SLEEP,
        environment={"B": "2", "A": "1"},
        volumes=[f"{data}:/b", f"{data}:/a:ro"],
    )
    started = api.inspect_container(before["containerId"])["State"]["StartedAt"]
    agent.set_target(target(2, reordered))
    # A changed hash would pull (at once: the image is here) and replace before converging.
    wait_for(
        lambda: (
            (s := agent.status()) and s["state"]["converged"] and s["state"]["targetVersion"] == 2
        ),
        what="converged on v2",
    )
    assert [r["Id"] for r in by_service(api, device_id)["app"]] == [before["containerId"]]
    assert api.inspect_container(before["containerId"])["State"]["StartedAt"] == started


def test_a_malformed_target_file_is_rejected_with_every_error_and_changes_nothing(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    agent.set_target(target(1, service("app", services.image1, command=SLEEP)))
    agent.start()
    before = wait_for(lambda: _running(agent, "app"), what="app running")

    broken = target(2, service("app", "Bad Image!", command=SLEEP), service("app", services.image1))
    broken["apps"]["1001"]["services"][1]["config"]["restart"] = "sometimes"
    agent.set_target(broken)
    ack = wait_for(lambda: (a := agent.ack()) and a["version"] == 2 and a, what="ack of v2")
    assert ack["accepted"] is False and ack["code"] == 400
    # schema errors and rule errors of the other services, all at once
    assert {e["path"] for e in ack["errors"]} == {
        "$.apps.1001.services[0].imageName",
        "$.apps.1001.services[1].config.restart",
        "$.apps.1001.services[1].serviceName",
    }

    agent.set_target(
        target(3, service("app", "Bad Image!", command=SLEEP), service("app", services.image1, 2))
    )
    ack = wait_for(lambda: (a := agent.ack()) and a["version"] == 3 and a, what="ack of v3")
    assert ack["code"] == 400
    paths = {e["path"] for e in ack["errors"]}
    assert paths == {"$.apps.1001.services[0].imageName", "$.apps.1001.services[1].serviceName"}

    agent.set_target("{not json")
    ack = cast(
        dict[str, Any],
        wait_for(lambda: (a := agent.ack()) and a["version"] is None and a, what="json ack"),
    )
    assert ack["code"] == 400 and "invalid JSON" in ack["errors"][0]["message"]

    status = agent.status()
    assert status is not None and status["state"]["targetVersion"] == 1
    assert [r["Id"] for r in by_service(api, device_id)["app"]] == [before["containerId"]]
    persisted = json.loads((agent.state_dir / "target.json").read_bytes())
    assert persisted["target"]["version"] == 1


def test_the_persisted_target_runs_after_a_restart_without_a_target_source(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    agent.set_target(target(4, service("app", services.image1, command=SLEEP)))
    agent.start()
    before = wait_for(lambda: _running(agent, "app"), what="app running")
    agent.stop()
    api.remove_container(before["containerId"], force=True)

    agent.start(target_file=False)
    after = wait_for(
        lambda: (s := _running(agent, "app")) and s["containerId"] != before["containerId"] and s
    )
    assert after["targetVersion"] == 4


def test_an_agent_without_any_target_touches_no_container(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    agent.set_target(target(1, service("app", services.image1, command=SLEEP)))
    agent.start()
    before = wait_for(lambda: _running(agent, "app"), what="app running")
    agent.stop()
    (agent.state_dir / "target.json").unlink()  # a fresh or lost state dir
    (agent.state_dir / "status.json").unlink()

    agent.start(target_file=False)
    state = wait_for(lambda: (s := agent.status()) and s["state"], what="a report")
    assert state["targetVersion"] is None and state["converged"] is False
    agent.stop()  # after at least one full pass
    rows = by_service(api, device_id)["app"]
    assert [(r["Id"], r["State"]) for r in rows] == [(before["containerId"], "running")]


def test_an_image_pruned_while_the_agent_knew_it_is_pulled_again_without_a_failure(
    agent: AgentProcess, services: Services, api: docker.APIClient, device_id: str
) -> None:
    # a tag of its own (image1's layers): removing it disturbs no other test
    repo = f"{services.registry}/fleet-test/pruned-{device_id}"
    api.pull(services.image1.rsplit(":", 1)[0], tag="1")
    api.tag(services.image1, repo, "1")
    api.push(repo, tag="1")
    mine = f"{repo}:1"
    agent.set_target(target(1, service("app", mine, command=SLEEP)))
    agent.start()
    wait_for(lambda: _running(agent, "app"), what="app running")
    agent.set_target(target(2, service("app", services.image2, command=SLEEP)))
    agent.wait_service(
        "app",
        lambda s: s["targetVersion"] == 2 and s["runningImage"] == services.image2,
        timeout=120,
    )
    # `docker image prune -a`: the agent saw the image listed and still takes it as here
    api.remove_image(mine)

    agent.set_target(target(3, service("app", mine, command=SLEEP)))
    back = agent.wait_service(
        "app",
        lambda s: s["targetVersion"] == 3 and s["serviceStatus"] == "running",
        timeout=120,
    )

    assert back["runningImage"] == mine and back["error"] is None
    assert "StartFailure" not in agent.log_path.read_text()  # no failure was ever counted
    assert api.inspect_image(mine)  # pulled again
