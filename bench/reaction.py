"""Benchmark 1: reaction over MQTT, next to the engine floor and a naive script, interleaved.

    python -m bench.reaction [--runs 20]

Each round, in rotating order: fleet-agent (a real `fleet-agent run` process) gets a retained
target with one service whose image is on the device; the naive script (`bench/naive.py`) gets
the same; and the floor does the same create + start directly with the Docker SDK. The figure
is the time from publishing (or, for the floor, from the create request) to the engine's own
`StartedAt` of the container. Between rounds each side is emptied again (container removed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from bench import common

EMPTY = b'{"version": %d, "apps": {}}'


def _agent_round(watch: common.Watch, api: docker.APIClient, v: int, image: str) -> float:
    doc = common.target(v, [common.service("web", image, 1, common.LOOP)])
    sent = watch.publish("target", doc)
    _, status = watch.first(
        "services/web", sent, lambda s: s["targetVersion"] == v and s["serviceStatus"] == "running"
    )
    started = common.started_at(api, status["containerId"])
    since = watch.publish("target", EMPTY % (v + 1))
    watch.first("state", since, lambda s: s["targetVersion"] == v + 1 and s["converged"])
    return started - sent


def _naive_round(
    watch: common.Watch, api: docker.APIClient, device: str, v: int, image: str
) -> float:
    doc = common.target(v, [common.service("web", image, 1, common.LOOP)])
    sent = watch.publish("target", doc)
    watch.first("done", sent, lambda d: d["version"] == v)
    started = common.started_at(api, f"naive.{device}.web")
    since = watch.publish("target", EMPTY % (v + 1))
    watch.first("done", since, lambda d: d["version"] == v + 1)
    return started - sent


def _floor_round(api: docker.APIClient, device: str, image: str) -> float:
    host_config = api.create_host_config(network_mode="none", restart_policy={"Name": "no"})
    began = time.time()
    created = api.create_container(
        image,
        common.LOOP,
        name=f"floor.{device}",
        host_config=host_config,
        detach=True,
        labels={"io.fleet-agent.device": device},
    )
    api.start(created["Id"])
    started = common.started_at(api, created["Id"])
    api.remove_container(created["Id"], force=True)
    return started - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = common.environment()
    api = common.api_client(env)
    image = env["FLEET_TEST_IMAGE_1"]
    repository, tag = image.rsplit(":", 1)
    api.pull(repository, tag=tag)
    agent_dev, naive_dev, floor_dev = (common.new_device(k) for k in ("agent", "naive", "floor"))
    samples: dict[str, list[float]] = {"agent": [], "naive": [], "floor": []}
    port = env["FLEET_TEST_MQTT_PORT"]
    naive = subprocess.Popen(
        [sys.executable, "-m", "bench.naive", naive_dev, "--mqtt", f"127.0.0.1:{port}"],
        cwd=common.REPO,
    )
    agent_watch = common.Watch(env, f"fleet/{agent_dev}")
    naive_watch = common.Watch(env, f"naive/{naive_dev}")
    try:
        with (
            tempfile.TemporaryDirectory() as workdir,
            common.agent_process(env, agent_dev, Path(workdir), reconcile_interval=300),
        ):
            time.sleep(2)  # both connected and subscribed
            sides: list[tuple[str, Callable[[int], float]]] = [
                ("agent", lambda v: _agent_round(agent_watch, api, v, image)),
                ("naive", lambda v: _naive_round(naive_watch, api, naive_dev, v, image)),
                ("floor", lambda _v: _floor_round(api, floor_dev, image)),
            ]
            for run in range(args.runs + 1):  # round 0 warms every side up and is dropped
                order = sides[run % 3 :] + sides[: run % 3]
                for name, side in order:
                    value = side(2 * run + 1)
                    if run:
                        samples[name].append(value)
                    time.sleep(0.2)
    finally:
        naive.terminate()
        agent_watch.close()
        naive_watch.close()
        for device in (agent_dev, floor_dev):
            common.remove_device(api, device)
        for row in api.containers(all=True, filters={"label": f"naive.device={naive_dev}"}):
            api.remove_container(row["Id"], force=True)
    figures: dict[str, Any] = {name: common.summary(s) for name, s in samples.items()}
    figures["agent_p50_over_floor_p50"] = round(
        figures["agent"]["p50"] / figures["floor"]["p50"], 3
    )
    figures["agent_p50_over_naive_p50"] = round(
        figures["agent"]["p50"] / figures["naive"]["p50"], 3
    )
    common.write_result("reaction", figures, vars(args))


if __name__ == "__main__":
    main()
