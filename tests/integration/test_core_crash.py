"""SIGKILL of the agent in the middle of a pass: after a restart it converges with exactly one
container per service, and nothing accepted is lost."""

from __future__ import annotations

from typing import Any

import docker

from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for

SLEEP = ["sh", "-c", "exec sleep 3600"]
NAMES = ["a", "b", "c", "d"]


def _target(version: int, image: str, marker: str) -> dict[str, object]:
    return target(
        version,
        *(service(n, image, i + 1, SLEEP, environment={"M": marker}) for i, n in enumerate(NAMES)),
    )


def _rows(api: docker.APIClient, device_id: str) -> list[dict[str, Any]]:
    return [row for rows in by_service(api, device_id).values() for row in rows]


def _converged(agent: AgentProcess, version: int) -> bool:
    status = agent.status()
    return bool(
        status and status["state"]["converged"] and status["state"]["targetVersion"] == version
    )


def _assert_one_running_container_per_service(
    api: docker.APIClient, device_id: str, marker: str
) -> None:
    grouped = by_service(api, device_id)
    assert sorted(grouped) == NAMES
    for name, rows in grouped.items():
        assert len(rows) == 1, (name, rows)
        inspect = api.inspect_container(rows[0]["Id"])
        assert inspect["State"]["Running"] is True
        assert "M=" + marker in inspect["Config"]["Env"]


def test_an_agent_killed_mid_pass_converges_with_exactly_one_container_per_service(
    agent: AgentProcess,
    services: Services,
    api: docker.APIClient,
    device_id: str,
    fresh_images: None,
) -> None:
    agent.set_target(_target(1, services.image1, "one"))
    agent.start()
    wait_for(lambda: by_service(api, device_id), interval=0.005, what="first container")
    agent.kill()  # some services created, others not yet
    agent.start()
    wait_for(lambda: _converged(agent, 1), what="converged on v1")
    _assert_one_running_container_per_service(api, device_id, "one")

    # Again while every service is being replaced (download-then-kill under way).
    v1 = {(r["Id"], "running") for r in _rows(api, device_id)}
    agent.set_target(_target(2, services.image2, "two"))
    wait_for(
        lambda: {(r["Id"], r["State"]) for r in _rows(api, device_id)} != v1,
        interval=0.005,
        what="replacement under way",
    )
    agent.kill()
    agent.start()
    wait_for(lambda: _converged(agent, 2), what="converged on v2")
    _assert_one_running_container_per_service(api, device_id, "two")
