"""The origin story against the real engine and registry: one bad image never blocks the good
service, retries follow the (compressed) backoff schedule, and fixing the target heals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import docker

from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, by_service, service, target, wait_for


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _error_of(agent: AgentProcess, name: str) -> dict[str, Any] | None:
    status = agent.service(name)
    return status["error"] if status else None


def test_good_service_runs_while_bad_one_backs_off_then_a_fixed_target_heals(
    agent: AgentProcess,
    services: Services,
    api: docker.APIClient,
    device_id: str,
    fresh_images: None,
) -> None:
    good = service("good", services.image1, 1, ["sh", "-c", "exec sleep 3600"])
    bad = service("bad", services.missing_image, 2)
    agent.set_target(target(1, good, bad))
    agent.start()

    running = wait_for(
        lambda: (s := agent.service("good")) and s["serviceStatus"] == "running" and s,
        what="good running",
    )
    assert running["error"] is None
    assert running["runningImage"] == services.image1

    # Collect each failed attempt of the bad service as it is reported.
    attempts: dict[int, dict[str, Any]] = {}

    def fourth_attempt() -> bool:
        error = _error_of(agent, "bad")
        if error:
            attempts.setdefault(error["retryCount"], error)
        return 4 in attempts

    wait_for(fourth_attempt, timeout=40, interval=0.05, what="four failed pulls")
    first = attempts[min(attempts)]
    assert first["type"] == "ImagePullBackOff"
    assert "manifest unknown" in first["message"]
    assert first["maxRetries"] == 10 and first["exhausted"] is False
    status = agent.service("bad")
    assert status is not None and status["containerId"] is None
    # Gaps grow 1, 2, 4 s (compressed schedule) and each nextRetry is what really happened.
    assert {1, 2, 3, 4} <= attempts.keys()  # every attempt was seen, none skipped
    for count in (1, 2, 3):
        now, later = attempts[count], attempts[count + 1]
        assert _ts(now["nextRetry"]) - _ts(now["timestamp"]) == min(2 ** (count - 1), 4)
        retried_at = _ts(later["timestamp"])
        assert retried_at >= _ts(now["nextRetry"])
        # woken at the deadline, not by the 30 s periodic pass
        assert retried_at - _ts(now["nextRetry"]) < 5

    fixed = service("bad", services.image2, 2, ["sh", "-c", "exec sleep 3600"])
    agent.set_target(target(2, good, fixed))
    healed = wait_for(
        lambda: (s := agent.service("bad")) and s["serviceStatus"] == "running" and s,
        what="bad healed",
    )
    assert healed["error"] is None
    assert healed["runningImage"] == services.image2
    assert healed["targetVersion"] == 2
    state = wait_for(lambda: (s := agent.status()) and s["state"]["converged"] and s["state"])
    assert state["counts"] == {"running": 2}
    grouped = by_service(api, device_id)
    assert sorted(grouped) == ["bad", "good"]
    assert all(len(rows) == 1 and rows[0]["State"] == "running" for rows in grouped.values())
    assert grouped["good"][0]["Id"] == running["containerId"]  # the good one was never touched
