"""Helpers for integration tests: the agent as a real process, targets, polling, the engine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import docker

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


def wait_for(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll until `probe` returns something truthy; fail with what was last seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return cast(T, last)
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last: {last!r}")


def service(
    name: str,
    image: str,
    service_id: int = 1,
    command: list[str] | None = None,
    **config: Any,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {"networkMode": "none", **config}
    if command is not None:
        cfg["command"] = command
    return {"serviceId": service_id, "serviceName": name, "imageName": image, "config": cfg}


def target(version: int | None, *services: dict[str, Any], app_id: int = 1001) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apps": {str(app_id): {"appId": app_id, "appName": "it", "services": list(services)}}
    }
    if version is not None:
        doc["version"] = version
    return doc


def write_atomic(path: Path, content: bytes | str) -> None:
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class AgentProcess:
    """`fleet-agent run` as a real child process, so it can be killed like on a device."""

    def __init__(self, workdir: Path, device_id: str, docker_host: str, **settings: Any) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.target_file = workdir / "target.json"
        self.log_path = workdir / "agent.log"
        self.env = {
            **os.environ,
            "DOCKER_HOST": docker_host,
            "FLEET_AGENT_DEVICE_ID": device_id,
            "FLEET_AGENT_STATE_DIR": str(self.state_dir),
            "FLEET_AGENT_LOG_FORMAT": "json",
            # Long, so a lost wake-up shows as a test timeout instead of hiding behind it.
            "FLEET_AGENT_RECONCILE_INTERVAL": "300",
            "FLEET_AGENT_BACKOFF_INITIAL": "1",
            "FLEET_AGENT_BACKOFF_MAX": "4",
            "FLEET_AGENT_MAX_RETRIES": "10",
            "FLEET_AGENT_STOP_TIMEOUT": "1",
            "FLEET_AGENT_MQTT_URL": "none",
            "PYTHONFAULTHANDLER": "1",  # SIGABRT dumps every thread's stack (a hang's cause)
        }
        self.env.update({f"FLEET_AGENT_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None

    def set_target(self, doc: dict[str, Any] | str | bytes) -> None:
        write_atomic(self.target_file, doc if isinstance(doc, str | bytes) else json.dumps(doc))

    def start(self, *, target_file: bool = True) -> None:
        args = [sys.executable, "-m", "fleet_agent.cli", "run"]
        if target_file:
            args += ["--target-file", str(self.target_file)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log, cwd=REPO)

    def wait_quietly(self, seconds: float) -> None:
        """Let the agent run for `seconds` (the random moment of a kill)."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(seconds)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = json.loads((self.state_dir / name).read_bytes())
        except FileNotFoundError:
            return None
        return result

    def status(self) -> dict[str, Any] | None:
        return self._read("status.json")

    def service(self, name: str) -> dict[str, Any] | None:
        services: dict[str, dict[str, Any]] = (self.status() or {}).get("services", {})
        return services.get(name)

    def wait_service(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], Any],
        timeout: float = 30.0,
        interval: float = 0.1,
    ) -> dict[str, Any]:
        """The service's status once `predicate` holds for it."""

        def probe() -> dict[str, Any] | None:
            status = self.service(name)
            return status if status is not None and predicate(status) else None

        return wait_for(probe, timeout=timeout, interval=interval, what=f"status of {name}")

    def ack(self) -> dict[str, Any] | None:
        return self._read("target-ack.json")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def containers_of(api: docker.APIClient, device_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.containers(
        all=True, filters={"label": f"io.fleet-agent.device={device_id}"}
    )
    return rows


def by_service(api: docker.APIClient, device_id: str) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in containers_of(api, device_id):
        grouped.setdefault(row["Labels"]["io.fleet-agent.service"], []).append(row)
    return grouped
