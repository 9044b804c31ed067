"""Benchmark 6: the agent's memory and CPU, idle with 50 services and under churn.

    python -m bench.footprint [--services 50] [--idle-minutes 10] [--churn-minutes 30]
                              [--churn-every 10]

A real `fleet-agent run` process on MQTT and the real engine. Idle: once its 50 services run,
RSS and CPU (utime + stime from /proc) are sampled over `--idle-minutes`; the figure is CPU
as a percentage of one core, and RSS at start and end. Churn: a new target every
`--churn-every` seconds (one service's environment changes each time, so a container is
replaced); RSS is sampled before each change, and the figure is its first, last and largest
value, and the slope over the second half (KiB per minute): flat means no leak.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common

TICKS = os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _target(env: dict[str, str], version: int, size: int) -> bytes:
    image = env["FLEET_TEST_IMAGE_1"]
    services = [
        common.service(f"s{i}", image, i + 1, common.LOOP, environment={"V": str(version)})
        if i == version % size
        else common.service(f"s{i}", image, i + 1, common.LOOP)
        for i in range(size)
    ]
    return common.target(version, services)


def _slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, KiB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [t / 60 for t, _ in samples]
    ys = [float(r) for _, r in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--idle-minutes", type=float, default=10.0)
    parser.add_argument("--churn-minutes", type=float, default=30.0)
    parser.add_argument("--churn-every", type=float, default=10.0)
    parser.add_argument(
        "--dev-venv", action="store_true", help="run the agent from .venv (operator extras too)"
    )
    args = parser.parse_args()
    python = sys.executable if args.dev_venv else common.device_python()
    env = common.environment()
    api = common.api_client(env)
    repository, tag = env["FLEET_TEST_IMAGE_1"].rsplit(":", 1)
    api.pull(repository, tag=tag)
    device = common.new_device("foot")
    watch = common.Watch(env, f"fleet/{device}")
    figures: dict[str, Any] = {"services": args.services, "python": python}
    try:
        with (
            tempfile.TemporaryDirectory() as workdir,
            common.agent_process(env, device, Path(workdir), python, reconcile_interval=30) as proc,
        ):
            time.sleep(1.5)
            version = 1
            sent = watch.publish("target", _target(env, version, args.services))
            watch.first("state", sent, lambda s: s["targetVersion"] == 1 and s["converged"], 600)
            time.sleep(5)
            rss0, cpu0, t0 = _rss_kib(proc.pid), _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.idle_minutes * 60)
            rss1, cpu1, t1 = _rss_kib(proc.pid), _cpu_seconds(proc.pid), time.monotonic()
            figures["idle"] = {
                "minutes": args.idle_minutes,
                "rss_mib_start": round(rss0 / 1024, 1),
                "rss_mib_end": round(rss1 / 1024, 1),
                "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
            }
            samples: list[tuple[float, int]] = []
            began = time.monotonic()
            while time.monotonic() - began < args.churn_minutes * 60:
                samples.append((time.monotonic() - began, _rss_kib(proc.pid)))
                version += 1
                watch.seen.clear()  # bounded memory for long runs
                watch.publish("target", _target(env, version, args.services))
                time.sleep(args.churn_every)
            second_half = [s for s in samples if s[0] >= args.churn_minutes * 30]
            figures["churn"] = {
                "minutes": args.churn_minutes,
                "targets": version - 1,
                "rss_mib_first": round(samples[0][1] / 1024, 1),
                "rss_mib_last": round(samples[-1][1] / 1024, 1),
                "rss_mib_max": round(max(r for _, r in samples) / 1024, 1),
                "slope_kib_per_min_second_half": round(_slope(second_half), 1),
            }
    finally:
        watch.close()
        common.remove_device(api, device)
    common.write_result("footprint", figures, vars(args))


if __name__ == "__main__":
    main()
