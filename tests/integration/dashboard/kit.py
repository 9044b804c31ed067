"""Helpers of the dashboard tests: the dashboard as a real process, simulated devices' retained
messages (the contract's JSON, as an agent would publish it), and a plain MQTT publisher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.brokers import free_port
from tests.integration.helpers import REPO, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


class DashboardProcess:
    """`fleet-agent dashboard` as a real child process on a free loopback port."""

    def __init__(self, workdir: Path, broker_url: str, *args: str) -> None:
        self.port = free_port()
        self.args = list(args)
        self.log_path = workdir / f"dashboard-{self.port}.log"
        self.env = {**os.environ, "FLEET_AGENT_MQTT_URL": broker_url}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [sys.executable, "-m", "fleet_agent.cli", "dashboard"]
        argv += ["--listen", f"127.0.0.1:{self.port}", *self.args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, cwd=REPO)
        wait_for(self._answers, timeout=30, what=f"dashboard on {self.url}")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"dashboard exited {self.proc.returncode}: {self.log()}")
        try:
            return http(self.url + "/api/fleet") in (200, 401)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


class Publisher:
    """A plain MQTT client that publishes (retained) messages and waits until they are sent."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(self.client.is_connected, timeout=10, what="publisher connected")

    def send(self, messages: list[tuple[str, Any]], retain: bool = True) -> None:
        infos = []
        for topic, doc in messages:
            payload = doc if isinstance(doc, str | bytes) else json.dumps(doc)
            infos.append(self.client.publish(topic, payload, qos=1, retain=retain))
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stamp(offset: float = 0.0) -> str:
    moment = time.time() + offset
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1000):03d}Z"
    )


def service_status(
    device: str, name: str, error: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    doc = {
        "deviceId": device,
        "appId": 1,
        "appName": "sim",
        "serviceId": 1,
        "serviceName": name,
        "imageName": f"registry.example/sim/{name}:1",
        "serviceStatus": "error" if error else "running",
        "containerId": None if error else "c0ffee",
        "runningImage": None,
        "restartCount": 0,
        "error": error,
        "targetVersion": 3,
        "updatedAt": stamp(),
        "exitCode": None,
    }
    return doc | extra


def pull_error(message: str, retry: int = 2, retries: int = 10) -> dict[str, Any]:
    return {
        "type": "ImagePullBackOff",
        "message": message,
        "timestamp": stamp(),
        "retryCount": retry,
        "maxRetries": retries,
        "nextRetry": stamp(120),
        "exhausted": False,
    }


def alert(device: str, service: str, message: str) -> dict[str, Any]:
    return {
        "deviceId": device,
        "service": service,
        "severity": "warning",
        "type": "ImagePullBackOff",
        "message": message,
        "raisedAt": stamp(-60),
        "updatedAt": stamp(),
        "retryCount": 2,
    }


def sim_device(
    device: str, services: int = 5, failing: int = 0, prefix: str = "fleet"
) -> list[tuple[str, Any]]:
    """The retained messages of one simulated device: `failing` of its services in error."""
    base = f"{prefix}/{device}"
    counts = {"running": services - failing} | ({"error": failing} if failing else {})
    messages: list[tuple[str, Any]] = [
        (f"{base}/availability", "online"),
        (
            f"{base}/state",
            {
                "deviceId": device,
                "agentVersion": "0.2.0",
                "targetVersion": 3,
                "converged": failing == 0,
                "counts": counts,
                "updatedAt": stamp(),
            },
        ),
    ]
    for index in range(services):
        name = f"svc-{index}"
        error = pull_error("manifest unknown") if index < failing else None
        messages.append((f"{base}/services/{name}", service_status(device, name, error)))
        if error:
            messages.append((f"{base}/alerts/{name}", alert(device, name, "manifest unknown")))
    return messages
