"""Recorder test parts: `fleet-agent recorder` as a child process (so a test can SIGKILL it),
fresh databases on SQLite and on a private PostgreSQL, reading tables back, and a simulated
fleet's retained messages (also used by bench/recorder.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from fleet_agent.model import iso
from fleet_agent.operator.recorder import schema, store
from tests.integration.helpers import REPO
from tests.integration.postgres import PrivatePostgres


class RecorderProcess:
    def __init__(self, workdir: Path, db_url: str, mqtt_url: str, name: str) -> None:
        self.args = [sys.executable, "-m", "fleet_agent.cli", "recorder", "--db", db_url]
        self.args += ["--url", mqtt_url]
        self.log_path = workdir / f"recorder-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, cwd=REPO)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def new_database(kind: str, tmp_path: Path, server: PrivatePostgres | None) -> str:
    """The URL of an empty database of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'rec-{uuid.uuid4().hex[:6]}.db'}"
    assert server is not None
    name = f"rec_{uuid.uuid4().hex[:10]}"
    admin = create_engine(store.normalised(server.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def rows(engine: Engine, table: str, **where: Any) -> list[dict[str, Any]]:
    t = schema.metadata.tables[table]
    query = select(t).where(*(t.c[k] == v for k, v in where.items()))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


class Publisher:
    """Publishes what simulated devices would (QoS 1), and waits until the broker has it all."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(500)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._last: mqtt.MQTTMessageInfo | None = None

    def send(self, topic: str, payload: Any, retain: bool = True) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._last = self.client.publish(topic, raw, qos=1, retain=retain)

    def flush(self) -> None:
        if self._last is not None:
            self._last.wait_for_publish(60)

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def status(
    device: str, name: str, at: float, state: str = "running", **extra: Any
) -> dict[str, Any]:
    """A service status as the agent publishes it, stamped `at` (epoch seconds)."""
    doc: dict[str, Any] = {
        "deviceId": device,
        "appId": 1,
        "appName": "sim",
        "serviceId": 1,
        "serviceName": name,
        "imageName": "reg/app:1",
        "serviceStatus": state,
        "containerId": None,
        "runningImage": None,
        "restartCount": 0,
        "error": None,
        "targetVersion": 1,
        "updatedAt": iso(at),
    }
    return doc | extra


def error(kind: str, at: float, retries: int = 1, exhausted: bool = False) -> dict[str, Any]:
    return {
        "type": kind,
        "message": f"{kind} happened",
        "timestamp": iso(at),
        "retryCount": retries,
        "maxRetries": 3,
        "nextRetry": None,
        "exhausted": exhausted,
    }


def entry(
    at: float, state: str, kind: str | None = None, retries: int | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"timestamp": iso(at), "serviceStatus": state}
    if kind:
        doc |= {"errorType": kind, "message": f"{kind} happened", "retryCount": retries}
    return doc


def row_counts(engine: Engine) -> tuple[int, int, int]:
    """Rows in device_state, service_status and transitions."""
    tables = (schema.device_state, schema.service_status, schema.transitions)
    with engine.connect() as conn:
        found = [conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables]
    return found[0], found[1], found[2]


def fleet_rows(devices: int) -> tuple[int, int, int]:
    """What `publish_fleet` makes: a state row per device, 2 statuses and 3 transitions."""
    return devices, 2 * devices, 3 * devices


def publish_fleet(port: int, devices: int, prefix: str, t0: float) -> int:
    """The retained messages of `devices` simulated devices (availability, info, 2 service
    statuses and their histories, state; every tenth with a service in ImagePullBackOff),
    published at QoS 1; returns when the broker acknowledged the last one, with how many."""
    sim = Publisher(port)
    sent = 0
    try:
        for n in range(devices):
            for topic, payload in _device_messages(f"{prefix}-{n:04d}", n, t0):
                sim.send(topic, payload)
                sent += 1
    finally:
        sim.close()
    return sent


def _device_messages(d: str, n: int, t0: float) -> list[tuple[str, Any]]:
    base = f"fleet/{d}"
    out: list[tuple[str, Any]] = [
        (f"{base}/availability", b"online"),
        (f"{base}/info", {"deviceId": d, "agentVersion": "0.1.0", "labels": {"n": str(n)}}),
        (f"{base}/services/web", status(d, "web", t0)),
        (f"{base}/history/web", [entry(t0 - 5, "downloading"), entry(t0, "running")]),
    ]
    if n % 10:
        out.append((f"{base}/services/db", status(d, "db", t0)))
        out.append((f"{base}/history/db", [entry(t0, "running")]))
    else:  # every tenth device has a service in error
        failing = status(d, "db", t0, "error", error=error("ImagePullBackOff", t0))
        out.append((f"{base}/services/db", failing))
        out.append((f"{base}/history/db", [entry(t0, "error", "ImagePullBackOff", 1)]))
    counts = {"running": 2} if n % 10 else {"running": 1, "error": 1}
    state = {
        "deviceId": d,
        "agentVersion": "0.1.0",
        "targetVersion": 1,
        "converged": n % 10 != 0,
        "counts": counts,
        "updatedAt": "2025-10-24T10:00:00.000Z",
    }
    out.append((f"{base}/state", state))
    return out
