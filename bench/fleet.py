"""A fleet on one machine: N real agents on simulated engines, each with its own MQTT connection.

Reusable by tests and benchmarks (rollouts, fleet scale):

    with Fleet(["mqtt://127.0.0.1:1883"], count=100, workdir=tmp) as fleet:
        watcher = FleetWatcher("mqtt://127.0.0.1:1883")
        publish_targets(url, fleet.device_ids, make_target(1, services=3))
        watcher.wait_converged(fleet.device_ids, version=1, timeout=60)

Every agent is the real `fleet_agent.agent.Agent` (reconciler, backoff, wake-ups, MQTT link);
only the engine is `SimEngine`, chosen by `docker_host = sim://...`. With several broker URLs the
agents are spread over them round-robin (a NATS cluster's nodes). `python -m bench.fleet worker`
runs one such process for `bench/fleet_scale.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import no_delay
from fleet_agent import logs
from fleet_agent.agent import Agent
from fleet_agent.config import Settings

SLEEP = ["sleep", "3600"]


def make_target(version: int, services: int, image: str = "sim/app:1", change: int = 0) -> bytes:
    """A target of `services` services; the first `change` ones carry this version in their
    environment (so they are replaced), the others stay as in every other version."""
    listed = [
        {
            "serviceId": i + 1,
            "serviceName": f"s{i}",
            "imageName": image,
            "config": {
                "command": SLEEP,
                "networkMode": "none",
                "environment": {"V": str(version)} if i < change else {},
            },
        }
        for i in range(services)
    ]
    app = {"appId": 1, "appName": "fleet", "services": listed}
    return json.dumps({"version": version, "apps": {"1": app}}).encode()


class Fleet:
    """`count` agents in this process; `start()` connects them all, `stop()` ends them."""

    def __init__(
        self,
        broker_urls: list[str],
        count: int,
        workdir: Path,
        *,
        sim_url: str = "sim://",
        prefix: str = "fleet",
        protocol: str = "3.1.1",
        first: int = 0,
        run_id: str | None = None,
        **settings: Any,
    ) -> None:
        run_id = run_id or uuid.uuid4().hex[:6]
        options: dict[str, Any] = {"reconcile_interval": 300.0, **settings}
        self.device_ids = [f"sim-{run_id}-{first + i:04d}" for i in range(count)]
        self.agents = [
            Agent(
                Settings(
                    device_id=device,
                    mqtt_url=broker_urls[(first + i) % len(broker_urls)],
                    mqtt_protocol="5" if protocol == "5" else "3.1.1",
                    topic_prefix=prefix,
                    docker_host=sim_url,
                    state_dir=str(workdir / device),
                    **options,
                )
            )
            for i, device in enumerate(self.device_ids)
        ]

    def start(self, rate: float = 0.0) -> None:
        """Start every agent; with `rate`, at most that many a second (a fleet that powers up
        at once storms its broker with connections, which is not what is measured)."""
        began = time.monotonic()
        for index, agent in enumerate(self.agents):
            if rate > 0:
                time.sleep(max(0.0, began + index / rate - time.monotonic()))
            agent.start()

    def states(self) -> dict[str, tuple[int | None, bool]]:
        """Each agent's own view: the version of its target and whether its last report said
        converged (so a device the watcher missed can be told from one that missed its target)."""
        seen: dict[str, tuple[int | None, bool]] = {}
        for device, agent in zip(self.device_ids, self.agents, strict=True):
            target, report = agent.store.current(), agent.reconciler.last_report
            converged = report is not None and report.state.converged
            seen[device] = (target.version if target else None, converged)
        return seen

    def stop(self) -> None:
        threads = [threading.Thread(target=a.stop) for a in self.agents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


def _client(url: str, name: str) -> mqtt.Client:
    host, _, port = url.removeprefix("mqtt://").partition(":")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(1000)
    client.on_socket_open = no_delay
    client.connect(host, int(port or 1883))
    client.loop_start()
    return client


def _subscribed(url: str, name: str, topic: str, qos: int, on_message: Any) -> mqtt.Client:
    ready = threading.Event()
    client = _client(url, name)
    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.subscribe(topic, qos=qos)
    if not ready.wait(10):
        raise RuntimeError(f"could not subscribe to {topic} on {url}")
    return client


class _Ack(msgspec.Struct):
    version: int | None = None


class _State(msgspec.Struct, rename="camel"):
    target_version: int | None = None
    converged: bool = False


class FleetWatcher:
    """Records when each device reports `converged` at a target version (QoS 1 on
    `{prefix}/+/state`), and counts every message under `{prefix}/#` on a second connection
    (QoS 0, so a broker's per-client queue limit never makes it drop the states)."""

    def __init__(self, url: str, prefix: str = "fleet", keep_messages: bool = False) -> None:
        self.prefix = prefix
        self.keep_messages = keep_messages
        self.messages: list[tuple[str, str]] = []  # (topic, payload) when kept
        self.count = 0
        self.by_kind: dict[str, int] = {}
        self.converged: dict[tuple[str, int], float] = {}
        self.acked: dict[str, int | None] = {}  # the version of each device's latest ack
        self.online: set[str] = set()
        self._lock = threading.Condition()
        self.clients = [
            _subscribed(url, "states", f"{prefix}/+/state", 1, self._on_state),
            _subscribed(url, "online", f"{prefix}/+/availability", 1, self._on_availability),
            _subscribed(url, "counter", f"{prefix}/#", 0, self._on_any),
        ]

    def _on_state(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        device = message.topic.split("/")[1]
        if message.payload:
            state = msgspec.json.decode(message.payload, type=_State)
            if state.converged and state.target_version is not None:
                with self._lock:
                    self.converged.setdefault((device, state.target_version), time.time())
                    self._lock.notify_all()

    def _on_availability(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        device = message.topic.split("/")[1]
        with self._lock:
            if message.payload == b"online":
                self.online.add(device)
            else:
                self.online.discard(device)

    def wait_online(self, devices: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.online.issuperset(devices):
                    return True
            time.sleep(0.1)
        return False

    def _on_any(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        kind = parts[2] if len(parts) > 2 else ""
        if message.topic.endswith("/target/ack") and message.payload:
            ack = msgspec.json.decode(message.payload, type=_Ack)
            with self._lock:
                self.acked[parts[1]] = ack.version
        with self._lock:
            self.count += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            if self.keep_messages:
                self.messages.append((message.topic, message.payload.decode(errors="replace")))

    def wait_converged(self, devices: list[str], version: int, timeout: float) -> float | None:
        """Epoch time the last device converged at `version`, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            left = [d for d in devices if (d, version) not in self.converged]
            while left and self._lock.wait(max(0.0, deadline - time.monotonic())):
                left = [d for d in left if (d, version) not in self.converged]
            left = [d for d in left if (d, version) not in self.converged]
            if left:
                return None
            return max(self.converged[(d, version)] for d in devices)

    def missing(self, devices: list[str], version: int) -> list[str]:
        with self._lock:
            return [d for d in devices if (d, version) not in self.converged]

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def publish_targets(
    url: str, devices: list[str], payload: bytes, prefix: str = "fleet", connections: int = 1
) -> float:
    """Publish each device's retained target, the devices dealt over `connections` clients
    (a NATS node stores a retained QoS 1 message in JetStream before it reads the next one of
    that connection); returns when the broker acknowledged the last."""
    clients = [_client(url, f"publisher{n}") for n in range(max(1, connections))]
    try:
        infos = [
            clients[n % len(clients)].publish(f"{prefix}/{d}/target", payload, qos=1, retain=True)
            for n, d in enumerate(devices)
        ]
        for info in infos:
            info.wait_for_publish(120)
        return time.time()
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()


def _worker(argv: list[str]) -> None:
    """One process of a fleet: start agents, say `ready`, stop on a line on stdin, report RSS."""
    parser = argparse.ArgumentParser(prog="bench.fleet worker")
    parser.add_argument("--brokers", required=True, help="comma-separated mqtt:// URLs")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--sim-url", default="sim://")
    parser.add_argument("--rate", type=float, default=0.0, help="agents started a second")
    args = parser.parse_args(argv)
    logs.configure("json", logging.ERROR)
    # paho's network loop says "not connected" when a clean stop races it: not the agents'
    logging.getLogger("paho.mqtt.client").setLevel(logging.CRITICAL)
    fleet = Fleet(
        args.brokers.split(","),
        args.count,
        args.workdir,
        first=args.first,
        run_id=args.run_id,
        sim_url=args.sim_url,
    )
    fleet.start(args.rate)
    print(json.dumps({"ready": fleet.device_ids}), flush=True)
    sys.stdin.readline()
    print(json.dumps({"rss_kib": _rss_kib(), "agents": fleet.states()}), flush=True)
    fleet.stop()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker(sys.argv[2:])
