"""What the rollout tests share: running `fleet-agent rollout` as a real process, recording
every target the broker carried (who, which version, when), and reading a rollout's retained
state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet_agent.operator.rollout_model import State, decode
from tests.integration.helpers import REPO


def rollout_args(broker_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "fleet_agent.cli", "rollout", *args, "--url", broker_url]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLEET_AGENT_")}


def rollout(broker_url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rollout_args(broker_url, *args),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=REPO,
    )


def rollout_process(broker_url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        rollout_args(broker_url, *args), stdout=out, stderr=out, env=_env(), cwd=REPO
    )


def write_release(path: Path, payload: bytes) -> Path:
    doc = json.loads(payload)
    doc.pop("version", None)
    path.write_text(json.dumps(doc))
    return path


class Recorder:
    """Every non-empty target published under the prefix (device, version, time), and the
    newest retained state of each rollout."""

    def __init__(self, host: str, port: int, prefix: str = "fleet") -> None:
        self.prefix = prefix
        self.targets: list[tuple[str, int | None, float]] = []
        self.states: dict[str, bytes] = {}
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe([(f"{prefix}/+/target", 1), (f"{prefix}/_rollouts/+", 1)])
        if not ready.wait(10):
            raise RuntimeError("recorder could not subscribe")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        with self._lock:
            if parts[1] == "_rollouts":
                self.states[parts[2]] = bytes(message.payload)
            elif message.payload and not message.retain:
                version = msgspec.json.decode(message.payload).get("version")
                self.targets.append((parts[1], version, time.time()))

    def state(self, name: str) -> State | None:
        with self._lock:
            payload = self.states.get(name)
        return decode(payload) if payload else None

    def wait_state(self, name: str, ok: Any, timeout: float = 120) -> State:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(name)
            if state is not None and ok(state):
                return state
            time.sleep(0.1)
        last = self.state(name)
        stages = Counter((r.phase, r.stage) for r in last.records) if last else None
        summary = f"{last.status} phase {last.phase} {last.reason} {stages}" if last else None
        raise AssertionError(f"rollout {name}: condition not met; last: {summary}")

    def published(self, since: float = 0.0) -> list[tuple[str, int | None, float]]:
        with self._lock:
            return [t for t in self.targets if t[2] >= since]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
