"""Benchmark: periodic passes of an idle agent come exactly once per configured interval.

    python -m bench.periodic [--interval 2] [--seconds 60] [--services 5]

The agent runs in this process (real engine, MQTT link connected) with a compressed
`FLEET_AGENT_RECONCILE_INTERVAL`. Once its services run and the passes kicked by their start
events are over, it is left alone for `--seconds`; every pass its wake-up thread runs is
counted and timed (monotonic). Figures: passes counted against `seconds / interval`, and the
gaps between passes (p50, p95, max, ms) against the interval.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench import common
from fleet_agent import logs
from fleet_agent.agent import Agent


def counted(run_pass: Callable[[], float], times: list[float]) -> Callable[[], float]:
    def run() -> float:
        times.append(time.monotonic())
        return run_pass()

    return run


def measure(env: dict[str, str], interval: float, seconds: float, size: int) -> dict[str, Any]:
    device = common.new_device("periodic")
    image = env["FLEET_TEST_IMAGE_1"]
    times: list[float] = []
    with tempfile.TemporaryDirectory() as workdir:
        settings = common.agent_settings(env, device, workdir, env["DOCKER_HOST"], interval)
        agent = Agent(settings)
        agent.wakeups.run_pass = counted(agent.wakeups.run_pass, times)
        agent.start()
        try:
            common.converge(agent, image, size)
            time.sleep(interval + 1.0)  # the passes kicked by the start events
            began = time.monotonic()
            time.sleep(seconds)
            ended = time.monotonic()
        finally:
            agent.stop()
            common.remove_device(common.api_client(env), device)
    idle = [t for t in times if began <= t < ended]
    gaps = [b - a for a, b in itertools.pairwise(idle)]
    return {
        "interval_s": interval,
        "seconds": seconds,
        "passes": len(idle),
        "expected": round(seconds / interval, 1),
        "ratio": round(len(idle) / (seconds / interval), 3),
        "gap_ms": common.summary(gaps) if gaps else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--services", type=int, default=5)
    args = parser.parse_args()
    logs.configure("json", logging.WARNING)
    env = common.environment()
    figures = measure(env, args.interval, args.seconds, args.services)
    common.write_result("periodic", figures, vars(args))


if __name__ == "__main__":
    main()
