"""Benchmarks against the real engine (run on demand, never in the test suite).

    .venv/bin/python -m bench.converge [--sizes 1,10,30] [--repeats 3]

Measures, with the agent as a real process on the project's test environment:
- converge: seconds from writing a target file to status.json saying converged, for N services
  whose image is already on the device (create + start, no pull);
- exit-report: seconds from a container's own exit (its FinishedAt) to status.json reporting it
  `exited`, which the engine's event stream is meant to make well under a second;
- idle-pass: the wall time of one reconcile pass with N running services and nothing to do
  (one list call to the engine, planning, status derivation), measured in-process.
Results are printed as a Markdown table and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker

from fleet_agent import config, logs
from fleet_agent.agent import Agent
from tests.integration.helpers import REPO, AgentProcess, service, target, wait_for

# Ends at once on SIGTERM, so replacements measure the agent, not a stop grace period.
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def _environment() -> dict[str, str]:
    out = subprocess.run(
        [str(REPO / "scripts" / "testenv.sh"), "all"], check=True, capture_output=True, text=True
    ).stdout
    return dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())


def _cleanup(api: docker.APIClient, device: str) -> None:
    for row in api.containers(all=True, filters={"label": f"io.fleet-agent.device={device}"}):
        api.remove_container(row["Id"], force=True)


def _converged(agent: AgentProcess, version: int) -> bool:
    state = (agent.status() or {}).get("state", {})
    return bool(state.get("converged") and state.get("targetVersion") == version)


@contextlib.contextmanager
def _agent(env: dict[str, str], api: docker.APIClient) -> Iterator[AgentProcess]:
    """The agent as a process on a fresh device id; its containers are removed afterwards."""
    device = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as workdir:
        agent = AgentProcess(Path(workdir), device, env["DOCKER_HOST"])
        agent.start()
        try:
            yield agent
        finally:
            agent.stop()
            _cleanup(api, device)


def bench_converge(
    env: dict[str, str], api: docker.APIClient, size: int, repeats: int
) -> list[float]:
    samples = []
    with _agent(env, api) as agent:
        for version in range(1, repeats + 1):
            services = [
                service(
                    f"s{i}",
                    env["FLEET_TEST_IMAGE_1"],
                    i + 1,
                    SLEEP,
                    environment={"V": str(version)},
                )
                for i in range(size)
            ]
            started = time.monotonic()
            agent.set_target(target(version, *services))
            wait_for(functools.partial(_converged, agent, version), timeout=300, interval=0.01)
            samples.append(time.monotonic() - started)
    return samples


def bench_exit_report(env: dict[str, str], api: docker.APIClient, repeats: int) -> list[float]:
    samples = []
    with _agent(env, api) as agent:
        for version in range(1, repeats + 1):
            job = service(
                "job",
                env["FLEET_TEST_IMAGE_1"],
                1,
                ["sh", "-c", f"sleep 1; exit {version}"],
                restart="no",
            )
            agent.set_target(target(version, job))
            status = agent.wait_service(
                "job",
                lambda s, code=version: s["exitCode"] == code,
                timeout=60,
                interval=0.002,
            )
            seen = time.time()
            finished = api.inspect_container(status["containerId"])["State"]["FinishedAt"]
            ended = dt.datetime.fromisoformat(finished[:26].rstrip("Z") + "+00:00").timestamp()
            samples.append(seen - ended)
    return samples


def bench_idle_pass(
    env: dict[str, str], api: docker.APIClient, size: int, repeats: int
) -> list[float]:
    device = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as workdir:
        settings = config.load(
            None,
            {
                "FLEET_AGENT_DEVICE_ID": device,
                "FLEET_AGENT_STATE_DIR": workdir,
                "FLEET_AGENT_MQTT_URL": "none",
                "DOCKER_HOST": env["DOCKER_HOST"],
            },
        )
        doc = target(
            1, *(service(f"s{i}", env["FLEET_TEST_IMAGE_1"], i + 1, SLEEP) for i in range(size))
        )
        agent = Agent(settings)
        agent.store.offer(json.dumps(doc).encode(), time.time())
        try:
            for _ in range(50):  # converge first (pulls finish in the background)
                agent.reconciler.run_pass()
                if agent.reconciler.last_report and agent.reconciler.last_report.state.converged:
                    break
                time.sleep(0.1)
            samples = []
            for _ in range(repeats):
                started = time.perf_counter()
                agent.reconciler.run_pass()
                samples.append(time.perf_counter() - started)
        finally:
            agent.reconciler.close()
            _cleanup(api, device)
    return samples


def _row(name: str, samples: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(samples),
        "median_s": round(statistics.median(samples), 4),
        "max_s": round(max(samples), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,10,30")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logs.configure("json", logging.WARNING)
    env = _environment()
    os.environ["DOCKER_HOST"] = env["DOCKER_HOST"]
    api = docker.APIClient(base_url=env["DOCKER_HOST"], version="1.41", timeout=120)
    repository, tag = env["FLEET_TEST_IMAGE_1"].rsplit(":", 1)
    api.pull(repository, tag=tag)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [
        _row(f"converge, {n} services", bench_converge(env, api, n, args.repeats)) for n in sizes
    ]
    rows.append(_row("exit reported", bench_exit_report(env, api, max(5, args.repeats))))
    rows += [_row(f"idle pass, {n} services", bench_idle_pass(env, api, n, 20)) for n in sizes]
    print("| measure | runs | median (s) | max (s) |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['n']} | {row['median_s']} | {row['max_s']} |")
    out = REPO / "bench" / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    info = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    out.write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
