"""Benchmark 4: what a converged pass costs, for 10, 50 and 100 services on the real engine.

    python -m bench.pass_cost [--sizes 10,50,100] [--passes 50]

The agent runs in this process (with its MQTT link connected) against the private dockerd
through a counting proxy on the engine socket (`bench/sockproxy.py`). Once all services run,
passes are called one after another: Docker API requests per pass come from the proxy, CPU ms
per pass is the CPU time of the thread running it (`time.thread_time`), wall ms beside it.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.sockproxy import SocketProxy
from fleet_agent import logs
from fleet_agent.agent import Agent


def measure(env: dict[str, str], proxy: SocketProxy, size: int, passes: int) -> dict[str, Any]:
    device = common.new_device(f"pass{size}")
    image = env["FLEET_TEST_IMAGE_1"]
    with tempfile.TemporaryDirectory() as workdir:
        settings = common.agent_settings(env, device, workdir, proxy.url, 3600)
        agent = Agent(settings)
        agent.start()
        try:
            common.converge(agent, image, size)
            time.sleep(1.0)  # the passes kicked by the last start events
            agent.reconciler.run_pass()
            cpu, wall = [], []
            since = time.time()
            for _ in range(passes):
                began, began_cpu = time.perf_counter(), time.thread_time()
                agent.reconciler.run_pass()
                cpu.append(time.thread_time() - began_cpu)
                wall.append(time.perf_counter() - began)
            requests = [r for r in proxy.requests if r[0] >= since]
        finally:
            agent.stop()
            common.remove_device(common.api_client(env), device)
    kinds = sorted({f"{method} {path.split('?')[0]}" for _, method, path in requests})
    return {
        "services": size,
        "passes": passes,
        "requests_per_pass": round(len(requests) / passes, 3),
        "request_kinds": kinds,
        "cpu_ms": common.summary(cpu),
        "wall_ms": common.summary(wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--passes", type=int, default=50)
    args = parser.parse_args()
    logs.configure("json", logging.WARNING)
    env = common.environment()
    api = common.api_client(env)
    repository, tag = env["FLEET_TEST_IMAGE_1"].rsplit(":", 1)
    api.pull(repository, tag=tag)
    with tempfile.TemporaryDirectory() as folder:
        proxy = SocketProxy(env["DOCKER_HOST"], str(Path(folder) / "docker.sock"))
        proxy.start()
        try:
            rows = [measure(env, proxy, int(n), args.passes) for n in args.sizes.split(",")]
        finally:
            proxy.close()
    common.write_result("pass_cost", {"rows": rows}, vars(args))


if __name__ == "__main__":
    main()
