"""Benchmark 5: cold start of 20 services that must all be pulled, fleet-agent vs the naive
script, interleaved, as a ratio.

    python -m bench.cold_start [--rounds 3] [--services 20]

20 distinct images (`bench/cold-N:1`, busybox with a file of its own, so each is its own
layer to download) are pushed to the test registry once. Each round, for each side in turn:
every one of those images is removed from the engine, the side gets a target with 20 services
(one per image), and the figure is the last container's `StartedAt` minus the publish time.
The third side is the engine floor: the same pulls, creates and starts made directly with the
Docker SDK, three services at a time (`--floor-workers`), each started once its image is in.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

from bench import common

FLOOR = "bench.cold-floor"
SIDES = ["agent", "naive", "floor"]


def _rootfs(index: int) -> bytes:
    """busybox with its applets and a file that makes this image's layer its own."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        listing = subprocess.run(
            ["/bin/busybox", "--list"], check=True, capture_output=True, text=True
        )
        for applet in listing.stdout.split():
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        data = f"cold image {index}\n".encode() * 4096
        info = tarfile.TarInfo("etc/cold-id")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def images(env: dict[str, str], api: docker.APIClient, count: int) -> list[str]:
    """Push the cold images to the registry unless it has them already."""
    names = [f"{env['FLEET_TEST_REGISTRY']}/bench/cold-{i}:1" for i in range(count)]
    for index, name in enumerate(names):
        try:
            api.inspect_distribution(name)
            continue
        except docker.errors.APIError:
            pass
        repository, tag = name.rsplit(":", 1)
        api.import_image_from_data(
            _rootfs(index), repository=repository, tag=tag, changes=['CMD ["sleep","3600"]']
        )
        for line in api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(line["error"])
    return names


def _forget(api: docker.APIClient, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image(name, force=True)


def _floor(api: docker.APIClient, names: list[str], workers: int) -> float:
    """The engine floor: the same pulls, creates and starts made directly with the SDK,
    `workers` services at a time, each created and started as soon as its image is in."""
    _forget(api, names)
    sent = time.time()

    def one(index: int, name: str) -> str:
        repository, tag = name.rsplit(":", 1)
        for _ in api.pull(repository, tag=tag, stream=True, decode=True):
            pass
        config = api.create_host_config(network_mode="none")
        container = api.create_container(
            name, common.LOOP, name=f"floor-{index}", labels={FLOOR: "1"}, host_config=config
        )["Id"]
        api.start(container)
        return str(container)

    with ThreadPoolExecutor(workers) as pool:
        started = list(pool.map(one, range(len(names)), names))
    last = max(common.started_at(api, c) for c in started)
    _remove_floor(api)
    return last - sent


def _remove_floor(api: docker.APIClient) -> None:
    for row in api.containers(all=True, filters={"label": f"{FLOOR}=1"}):
        api.remove_container(row["Id"], force=True)


def _round(
    api: docker.APIClient, watch: common.Watch, names: list[str], v: int, label: str
) -> float:
    _forget(api, names)
    services = [common.service(f"s{i}", n, i + 1, common.LOOP) for i, n in enumerate(names)]
    sent = watch.publish("target", common.target(v, services))
    if label == "agent":
        watch.first("state", sent, lambda s: s["targetVersion"] == v and s["converged"], 600)
        rows = api.containers(
            filters={"label": f"io.fleet-agent.device={watch.base.split('/')[1]}"}
        )
    else:
        watch.first("done", sent, lambda d: d["version"] == v, 600)
        rows = api.containers(filters={"label": f"naive.device={watch.base.split('/')[1]}"})
    last = max(common.started_at(api, row["Id"]) for row in rows)
    since = watch.publish("target", b'{"version": %d, "apps": {}}' % (v + 1))
    if label == "agent":
        watch.first("state", since, lambda s: s["targetVersion"] == v + 1 and s["converged"])
    else:
        watch.first("done", since, lambda d: d["version"] == v + 1)
    return last - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--pull-concurrency", type=int, default=None, help="agent setting")
    parser.add_argument(
        "--floor-workers", type=int, default=3, help="services the engine floor runs at once"
    )
    args = parser.parse_args()
    env = common.environment()
    api = common.api_client(env)
    names = images(env, api, args.services)
    agent_dev, naive_dev = common.new_device("cold"), common.new_device("naive")
    port = env["FLEET_TEST_MQTT_PORT"]
    naive = subprocess.Popen(
        [sys.executable, "-m", "bench.naive", naive_dev, "--mqtt", f"127.0.0.1:{port}"],
        cwd=common.REPO,
    )
    watches = {
        "agent": common.Watch(env, f"fleet/{agent_dev}"),
        "naive": common.Watch(env, f"naive/{naive_dev}"),
    }
    samples: dict[str, list[float]] = {"agent": [], "naive": [], "floor": []}
    settings = {"pull_concurrency": args.pull_concurrency} if args.pull_concurrency else {}
    try:
        with (
            tempfile.TemporaryDirectory() as workdir,
            common.agent_process(env, agent_dev, Path(workdir), reconcile_interval=300, **settings),
        ):
            time.sleep(2)
            for run in range(args.rounds):
                for label in SIDES[run % 3 :] + SIDES[: run % 3]:  # each side first in turn
                    if label == "floor":
                        samples[label].append(_floor(api, names, args.floor_workers))
                    else:
                        samples[label].append(
                            _round(api, watches[label], names, 2 * run + 1, label)
                        )
    finally:
        naive.terminate()
        for watch in watches.values():
            watch.close()
        common.remove_device(api, agent_dev)
        _remove_floor(api)
        for row in api.containers(all=True, filters={"label": f"naive.device={naive_dev}"}):
            api.remove_container(row["Id"], force=True)
    figures: dict[str, Any] = {k: common.summary(v, scale=1.0) for k, v in samples.items()}
    figures["agent_over_naive_median"] = round(
        statistics.median(samples["agent"]) / statistics.median(samples["naive"]), 3
    )
    figures["agent_over_floor_median"] = round(
        statistics.median(samples["agent"]) / statistics.median(samples["floor"]), 3
    )
    figures["unit"] = "seconds"
    common.write_result("cold_start", figures, vars(args))


if __name__ == "__main__":
    main()
