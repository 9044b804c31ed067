"""Periodic passes of an idle agent come once per configured interval, not more often.

The agent runs in the test's process (real engine, no MQTT) with a compressed interval, so its
wake-up thread's passes can be counted; a count with a generous window, not a timing: a late
wake-up on a loaded machine means fewer passes, never more.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from fleet_agent import config
from fleet_agent.agent import Agent
from tests.integration.conftest import Services
from tests.integration.helpers import service, target, wait_for

INTERVAL = 0.5
WINDOW = 6.0  # twelve intervals


def _counted(run_pass: Callable[[], float], times: list[float]) -> Callable[[], float]:
    def run() -> float:
        times.append(time.monotonic())
        return run_pass()

    return run


def test_an_idle_agent_runs_one_periodic_pass_per_interval(
    tmp_path: Path, services: Services, device_id: str
) -> None:
    settings = config.load(
        None,
        {
            "FLEET_AGENT_DEVICE_ID": device_id,
            "FLEET_AGENT_STATE_DIR": str(tmp_path),
            "FLEET_AGENT_MQTT_URL": "none",
            "FLEET_AGENT_RECONCILE_INTERVAL": str(INTERVAL),
            "FLEET_AGENT_STOP_TIMEOUT": "1",
            "DOCKER_HOST": services.docker_host,
        },
    )
    agent = Agent(settings)
    times: list[float] = []
    agent.wakeups.run_pass = _counted(agent.wakeups.run_pass, times)
    agent.start()
    try:
        doc = target(1, service("idle", services.image1, 1, ["sh", "-c", "exec sleep 3600"]))
        agent.offer(json.dumps(doc).encode(), "test")
        wait_for(
            lambda: (r := agent.reconciler.last_report) and r.state.converged,
            timeout=120,
            what="converged",
        )
        time.sleep(1.0)  # the passes kicked by the start event
        began = time.monotonic()
        time.sleep(WINDOW)
        passes = sum(1 for t in times if began <= t < began + WINDOW)
    finally:
        agent.stop()
    expected = WINDOW / INTERVAL
    # twice as many would be two schedules side by side; none at all, a lost wake-up
    assert expected / 3 <= passes <= expected + 2, passes
