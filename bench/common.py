"""What every benchmark shares: the test environment, an agent to measure, figures, results.

A benchmark is one command (`python -m bench.NAME`); it starts what it needs through
`scripts/testenv.sh`, prints its figures and writes `bench/results/NAME.json` (not committed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet_agent import config
from fleet_agent.agent import Agent

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# Ends at once on SIGTERM, so replacements measure the agent, not a stop grace period.
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def environment() -> dict[str, str]:
    """Start (or reuse) the engine, registry and broker; their addresses as testenv says."""
    out = subprocess.run(
        [str(REPO / "scripts" / "testenv.sh"), "all"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line
    )
    os.environ["DOCKER_HOST"] = env["DOCKER_HOST"]
    return env


def api_client(env: dict[str, str]) -> docker.APIClient:
    return docker.APIClient(base_url=env["DOCKER_HOST"], version="1.41", timeout=120)


def remove_device(api: docker.APIClient, device: str) -> None:
    for row in api.containers(all=True, filters={"label": f"io.fleet-agent.device={device}"}):
        api.remove_container(row["Id"], force=True)


def new_device(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:6]}"


def service(name: str, image: str, sid: int, command: list[str], **config: Any) -> dict[str, Any]:
    cfg = {"networkMode": "none", "command": command, **config}
    return {"serviceId": sid, "serviceName": name, "imageName": image, "config": cfg}


def target(version: int, services: list[dict[str, Any]]) -> bytes:
    app = {"appId": 1, "appName": "bench", "services": services}
    return json.dumps({"version": version, "apps": {"1": app}}).encode()


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary(samples: list[float], scale: float = 1000.0) -> dict[str, float]:
    """p50, p95, max and mean, in ms by default."""
    return {
        "n": len(samples),
        "p50": round(pct(samples, 50) * scale, 2),
        "p95": round(pct(samples, 95) * scale, 2),
        "max": round(max(samples) * scale, 2),
        "mean": round(statistics.fmean(samples) * scale, 2),
    }


def started_at(api: docker.APIClient, container: str) -> float:
    """The engine's own record of when a container started (epoch seconds)."""
    return _stamp(api.inspect_container(container)["State"]["StartedAt"])


def finished_at(api: docker.APIClient, container: str) -> float:
    return _stamp(api.inspect_container(container)["State"]["FinishedAt"])


def _stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    except OSError:
        mem = "?"
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "mem_kib": mem,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "load": os.getloadavg(),
    }


def write_result(name: str, figures: dict[str, Any], args: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "args": args,
        "figures": figures,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"written to {path.relative_to(REPO)}")
    return path


def wait_until(probe: Any, timeout: float, interval: float = 0.002) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s")


def agent_settings(
    env: dict[str, str], device: str, workdir: str, docker_host: str, interval: float
) -> config.Settings:
    """Settings of an agent run in the benchmark's own process, on the test broker."""
    return config.load(
        None,
        {
            "FLEET_AGENT_DEVICE_ID": device,
            "FLEET_AGENT_STATE_DIR": workdir,
            "FLEET_AGENT_MQTT_URL": f"mqtt://127.0.0.1:{env['FLEET_TEST_MQTT_PORT']}",
            "FLEET_AGENT_RECONCILE_INTERVAL": str(interval),
            "DOCKER_HOST": docker_host,
        },
    )


def converge(agent: Agent, image: str, size: int) -> None:
    """Give the agent `size` looping services of `image` and wait until they all run."""
    services = [service(f"s{i}", image, i + 1, LOOP) for i in range(size)]
    agent.offer(target(1, services), "bench")
    wait_until(lambda: (r := agent.reconciler.last_report) and r.state.converged, 600, 0.1)


def device_python() -> str:
    """A Python with fleet-agent and only its device dependencies (no operator extras such as
    rich, which structlog would load): what a device runs. Made once under .run/."""
    venv = REPO / ".run" / "device-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists() or (REPO / "pyproject.toml").stat().st_mtime > stamp.stat().st_mtime:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", str(REPO)], check=True)
        stamp.touch()
    return str(python)


@contextmanager
def agent_process(
    env: dict[str, str],
    device: str,
    workdir: Path,
    python: str = sys.executable,
    **settings: Any,
) -> Iterator[subprocess.Popen[bytes]]:
    """`fleet-agent run` as a child process on MQTT (the contract's topics), stopped after."""
    variables = {
        **os.environ,
        "DOCKER_HOST": env["DOCKER_HOST"],
        "FLEET_AGENT_DEVICE_ID": device,
        "FLEET_AGENT_STATE_DIR": str(workdir / device),
        "FLEET_AGENT_LOG_FORMAT": "json",
        "FLEET_AGENT_MQTT_URL": f"mqtt://127.0.0.1:{env['FLEET_TEST_MQTT_PORT']}",
        "FLEET_AGENT_STOP_TIMEOUT": "1",
    }
    variables.update({f"FLEET_AGENT_{k.upper()}": str(v) for k, v in settings.items()})
    logs = Path(os.environ.get("BENCH_LOG_DIR") or workdir)  # to keep them: BENCH_LOG_DIR
    log = (logs / f"{device}.log").open("ab")
    proc = subprocess.Popen(
        [python, "-m", "fleet_agent.cli", "run"], env=variables, stdout=log, stderr=log
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def no_delay(_client: Any, _userdata: Any, sock: Any) -> None:
    """TCP_NODELAY for the benchmark's own clients, so they add no Nagle delay of theirs."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Watch:
    """An MQTT client that publishes targets and keeps every message under `{base}/#` with the
    time it arrived."""

    def __init__(self, env: dict[str, str], base: str) -> None:
        self.base = base
        self.seen: list[tuple[float, str, bytes]] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_socket_open = no_delay
        self.client.on_message = lambda _c, _u, m: self.seen.append(
            (time.time(), m.topic, bytes(m.payload))
        )
        self.client.connect("127.0.0.1", int(env["FLEET_TEST_MQTT_PORT"]))
        self.client.loop_start()
        self.client.subscribe(f"{base}/#", qos=1)
        time.sleep(0.3)

    def publish(self, suffix: str, payload: bytes, retain: bool = True) -> float:
        """Publish and return the time just before sending."""
        at = time.time()
        self.client.publish(f"{self.base}/{suffix}", payload, qos=1, retain=retain)
        return at

    def first(
        self, suffix: str, since: float, match: Any, timeout: float = 60
    ) -> tuple[float, Any]:
        """(arrival time, JSON) of the first message on `suffix` after `since` that matches."""
        topic = f"{self.base}/{suffix}"

        def probe() -> tuple[float, Any] | None:
            for at, t, payload in list(self.seen):
                if t == topic and at >= since and payload:
                    doc = json.loads(payload)
                    if match(doc):
                        return at, doc
            return None

        found: tuple[float, Any] = wait_until(probe, timeout)
        return found

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
