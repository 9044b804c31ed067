"""Benchmark 7: a fleet of N simulated devices, on one Mosquitto and on a three-node NATS
cluster (MQTT 3.1.1), publish-to-converged time, broker message rate and memory.

    python -m bench.fleet_scale [--sizes 100,500,1000] [--brokers mosquitto,nats]
                                [--per-process 125] [--services 3] [--rate 200]
                                [--publishers 8]

Every device is the real agent (`bench/fleet.py`: reconciler, backoff, wake-ups, its own MQTT
connection) on a simulated engine (pulls take 0.2 s), `--per-process` agents per worker
process, started at `--rate` agents a second in all (a broker is not stormed with connections).
On NATS the agents are spread over the three nodes and the targets are published on the
first. Once every device says `online`, `--publishers` clients (on that one node) publish a
retained target to each device; the figure is the time from the first publish to the last
device reporting `converged` at that version, the messages the broker delivered to a
subscriber of `fleet/#` in that time (a rate per second and per device), the CPU the workers
and the broker spent in it per device (from /proc: what load does not inflate, unlike the
times), the workers' threads, their RSS per device and the broker's RSS. A device not seen
converged is classified by its agent's own view (target not received; received, not
converged; converged but its `state` not seen).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import common
from bench.fleet import FleetWatcher, make_target, publish_targets
from tests.integration.brokers import NatsCluster, free_port

SIM = "sim://?pull_delay=0.2"
TICKS = os.sysconf("SC_CLK_TCK")


class Mosquitto:
    """One Mosquitto of the benchmark's own: no per-client queue limit, no Nagle."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "set_tcp_nodelay true\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        )
        self.log = (workdir / "mosquitto.log").open("ab")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> list[str]:
        return [f"mqtt://127.0.0.1:{self.port}"]

    def start(self) -> None:
        self.procs = [
            subprocess.Popen(
                ["mosquitto", "-c", str(self.config)], stdout=self.log, stderr=self.log
            )
        ]
        time.sleep(0.5)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)


class Nats(NatsCluster):
    @property
    def urls(self) -> list[str]:
        return [f"mqtt://127.0.0.1:{port}" for port in self.mqtt_ports]


def _proc(pid: int) -> dict[str, int]:
    """RSS (KiB), threads and CPU (clock ticks, user + system) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return {
        "rss": fields["VmRSS"],
        "threads": fields["Threads"],
        "cpu": int(stat[11]) + int(stat[12]),
    }


def _cpu_ms(pids: list[int]) -> float:
    return sum(_proc(pid)["cpu"] for pid in pids) * 1000 / TICKS


def _start_workers(urls: list[str], size: int, run_id: str, workdir: str, args: Any) -> list[Any]:
    processes = math.ceil(size / args.per_process)
    workers = []
    for index in range(processes):
        first = index * args.per_process
        count = min(args.per_process, size - first)
        command = [sys.executable, "-m", "bench.fleet", "worker", "--brokers", ",".join(urls)]
        command += ["--count", str(count), "--first", str(first), "--run-id", run_id]
        command += ["--workdir", workdir, "--sim-url", SIM, "--rate", str(args.rate / processes)]
        workers.append(
            subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=common.REPO
            )
        )
    return workers


def _why_missing(
    missing: list[str], agents: dict[str, Any], watcher: FleetWatcher
) -> dict[str, int]:
    """Where each device the watcher did not see converged got stuck, by the agent's own view."""
    causes: dict[str, int] = {}
    for device in missing:
        version, converged = agents.get(device, (None, False))
        if version != 1:
            cause = "target not received"
        elif converged:
            cause = "converged, state not seen by the watcher"
        else:
            cause = "target received, not converged"
        if watcher.acked.get(device) == 1:
            cause += " (ack seen)"
        causes[cause] = causes.get(cause, 0) + 1
    return causes


def run_fleet(urls: list[str], broker_pids: list[int], size: int, args: Any) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    workers: list[subprocess.Popen[str]] = []
    devices: list[str] = []
    agents: dict[str, Any] = {}
    watcher = FleetWatcher(urls[0])
    # The devices' state folders on tmpfs: a real device has a disk of its own, and a thousand
    # agents' fsyncs on one shared disk would measure that disk, not the agents.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=shm) as workdir:
        try:
            started = time.monotonic()
            workers = _start_workers(urls, size, run_id, workdir, args)
            pids = [w.pid for w in workers]
            for worker in workers:
                assert worker.stdout is not None
                devices += json.loads(worker.stdout.readline())["ready"]
            if not watcher.wait_online(devices, timeout=600):
                raise RuntimeError(f"{len(devices) - len(watcher.online)} devices never online")
            connect_s = time.monotonic() - started
            startup_cpu = _cpu_ms(pids)
            time.sleep(2)
            before, cpu0, broker0 = watcher.count, _cpu_ms(pids), _cpu_ms(broker_pids)
            kinds = dict(watcher.by_kind)
            threads = sum(_proc(pid)["threads"] for pid in pids)
            sent = time.time()
            target = make_target(1, args.services)
            published = publish_targets(urls[0], devices, target, connections=args.publishers)
            done = watcher.wait_converged(devices, 1, timeout=args.timeout)
            cpu1, broker1 = _cpu_ms(pids), _cpu_ms(broker_pids)
            delivered = watcher.count - before
            by_topic = {k: n - kinds.get(k, 0) for k, n in sorted(watcher.by_kind.items())}
            missing = watcher.missing(devices, 1)
            rss = []
            for worker in workers:
                assert worker.stdin is not None and worker.stdout is not None
                worker.stdin.write("\n")
                worker.stdin.flush()
                answer = json.loads(worker.stdout.readline())
                rss.append(answer["rss_kib"])
                agents.update(answer["agents"])
            broker_rss = sum(_proc(pid)["rss"] for pid in broker_pids)
        finally:
            for worker in workers:
                try:
                    worker.wait(120)
                except subprocess.TimeoutExpired:
                    worker.kill()
            watcher.close()
    window = (done or time.time()) - sent
    return {
        "devices": size,
        "processes": len(workers),
        "threads": threads,
        "connect_s": round(connect_s, 1),
        "startup_cpu_ms_per_device": round(startup_cpu / size, 2),
        "publish_s": round(published - sent, 2),
        "publish_to_all_converged_s": round(done - sent, 2) if done else None,
        "not_converged": len(missing),
        "why_not_converged": _why_missing(missing, agents, watcher),
        "agent_cpu_ms_per_device": round((cpu1 - cpu0) / size, 2),
        "broker_cpu_ms_per_device": round((broker1 - broker0) / size, 2),
        "messages_delivered_to_one_subscriber": delivered,
        "messages_per_device": round(delivered / size, 1),
        "messages_per_device_by_topic": {k: round(n / size, 2) for k, n in by_topic.items()},
        "message_rate_per_s": round(delivered / window, 1),
        "agent_rss_mib_total": round(sum(rss) / 1024, 1),
        "agent_rss_mib_per_device": round(sum(rss) / 1024 / size, 2),
        "broker_rss_mib": round(broker_rss / 1024, 1),
    }


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop brokers and workers too
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--brokers", default="mosquitto,nats")
    parser.add_argument("--per-process", type=int, default=125)
    parser.add_argument("--services", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=200.0, help="agents started a second, in all")
    parser.add_argument("--publishers", type=int, default=8, help="connections publishing targets")
    args = parser.parse_args()
    rows = []
    for kind in args.brokers.split(","):
        with tempfile.TemporaryDirectory() as folder:
            broker: Mosquitto | Nats = (
                Mosquitto(Path(folder)) if kind == "mosquitto" else Nats(Path(folder))
            )
            broker.start()
            try:
                pids = [p.pid for p in broker.procs]
                for size in (int(n) for n in args.sizes.split(",")):
                    row = {"broker": kind, **run_fleet(broker.urls, pids, size, args)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            finally:
                broker.stop()
    common.write_result("fleet_scale", {"rows": rows}, vars(args))


if __name__ == "__main__":
    main()
