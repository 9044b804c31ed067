"""The invariants every fault-injection test checks once the agent has settled after a fault.

- no accepted target lost: the persisted target and the retained ack are at the latest version;
- at most one container per service, none for a service outside the target, every service of
  the target running;
- unmanaged containers untouched (same container, same start);
- the retained topics match reality: a status per service of the target (its real container,
  `running`, the current target version), no status, alert or history of any other service,
  the device state converged at that version, `online`;
- the agent alive and subscribed: a `cmd/reconcile` gets its result.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import docker
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.helpers import AgentProcess, by_service, wait_for

PER_SERVICE = ("services", "alerts", "history")


def retained_topics(port: int, base: str, timeout: float = 10.0) -> dict[str, bytes]:
    """Every retained message under `base/` now (cleared ones are absent), by suffix.

    A message to a topic of our own, published after the subscription, arrives after every
    retained message the broker sends for it, so its arrival says the snapshot is complete.
    QoS 0: Mosquitto would drop QoS 1 messages beyond its per-client queue (1,000)."""
    sentinel = f"probe-sentinel/{uuid.uuid4().hex}"
    found: dict[str, bytes] = {}
    done = threading.Event()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == sentinel:
            done.set()
        elif message.retain and message.payload:
            found[message.topic.removeprefix(base + "/")] = bytes(message.payload)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"snap-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe([(f"{base}/#", 0), (sentinel, 0)])
        if not subscribed.wait(timeout):
            raise AssertionError("no SUBACK for the retained snapshot")
        client.publish(sentinel, b"x", qos=1)
        if not done.wait(timeout):
            raise AssertionError("the retained snapshot did not complete")
        return dict(found)
    finally:
        client.disconnect()
        client.loop_stop()


def _answers_commands(port: int, base: str, timeout: float = 10.0) -> bool:
    request = uuid.uuid4().hex
    answered = threading.Event()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if json.loads(message.payload).get("requestId") == request:
                answered.set()
        except ValueError:
            pass

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cmd-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe(f"{base}/cmd/result", 1)
        subscribed.wait(timeout)
        client.publish(f"{base}/cmd/reconcile", json.dumps({"requestId": request}), qos=1)
        return answered.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class World:
    """What a fault-injection test runs: one agent, its broker, its engine, bystanders."""

    api: docker.APIClient
    agent: AgentProcess
    device_id: str
    broker_port: int
    prefix: str = "fleet"
    unmanaged: dict[str, str] = field(default_factory=dict)  # container id -> StartedAt

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    def add_bystander(self, image: str) -> str:
        """An unmanaged container (no labels of ours) the agent must never touch."""
        self.api.pull(image)  # another test may have removed the local copy
        created = self.api.create_container(
            image, ["sh", "-c", "exec sleep 3600"], host_config={"NetworkMode": "none"}
        )
        self.api.start(created["Id"])
        self.unmanaged[created["Id"]] = self.api.inspect_container(created["Id"])["State"][
            "StartedAt"
        ]
        return str(created["Id"])

    def remove_bystanders(self) -> None:
        for container in self.unmanaged:
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(container, force=True)

    def violations(self, version: int, names: set[str]) -> list[str]:
        """Everything that breaks an invariant now; empty when all hold."""
        found = self._agent_violations(version)
        found += self._engine_violations(names)
        retained = retained_topics(self.broker_port, self.base)
        found += self._retained_violations(retained, version, names)
        if not found and not _answers_commands(self.broker_port, self.base):
            found.append("no cmd/result: the agent is not subscribed")
        return found

    def settle(self, version: int, names: set[str], timeout: float = 90.0) -> None:
        """Wait until every invariant holds; fail with what still breaks them."""
        last: list[str] = []

        def holds() -> bool:
            last[:] = self.violations(version, names)
            return not last

        try:
            wait_for(holds, timeout=timeout, interval=0.5, what="the invariants")
        except AssertionError:
            self._dump_threads()
            raise AssertionError(f"invariants broken after {timeout}s: {last}") from None

    def _dump_threads(self) -> None:
        """Every thread's stack into the agent's log (PYTHONFAULTHANDLER), to see a hang."""
        proc = self.agent.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def _agent_violations(self, version: int) -> list[str]:
        found: list[str] = []
        if self.agent.proc is None or self.agent.proc.poll() is not None:
            found.append("the agent is not running")
        try:
            persisted = json.loads((self.agent.state_dir / "target.json").read_bytes())
        except (OSError, ValueError) as exc:
            return [*found, f"no persisted target: {exc}"]
        if persisted["target"].get("version") != version:
            found.append(f"persisted target is v{persisted['target'].get('version')}")
        return found

    def _engine_violations(self, names: set[str]) -> list[str]:
        found: list[str] = []
        rows = by_service(self.api, self.device_id)
        for name, containers in rows.items():
            if len(containers) > 1:
                found.append(f"{name}: {len(containers)} containers")
            if name not in names:
                found.append(f"{name}: managed container outside the target")
        for name in names:
            if name not in rows or rows[name][0]["State"] != "running":
                found.append(f"{name}: not running")
        for container, started in self.unmanaged.items():
            state = self.api.inspect_container(container)["State"]
            if not state["Running"] or state["StartedAt"] != started:
                found.append(f"unmanaged container {container[:12]} was touched")
        return found

    def _retained_violations(
        self, retained: dict[str, bytes], version: int, names: set[str]
    ) -> list[str]:
        found: list[str] = []
        rows = by_service(self.api, self.device_id)
        for suffix in retained:
            kind, _, name = suffix.partition("/")
            if kind in PER_SERVICE and name not in names and name != "_agent":
                found.append(f"retained {suffix} of a service outside the target")
        for name in names:
            status = json.loads(retained.get(f"services/{name}", b"null"))
            real = rows.get(name, [{}])[0].get("Id")
            if status is None:
                found.append(f"no retained status for {name}")
            elif (status["containerId"], status["serviceStatus"], status["targetVersion"]) != (
                real,
                "running",
                version,
            ):
                found.append(f"retained status of {name} does not match: {status}")
        state = json.loads(retained.get("state", b"null"))
        if not state or (state["targetVersion"], state["converged"]) != (version, True):
            found.append(f"retained state is {state}")
        ack = json.loads(retained.get("target/ack", b"null"))
        if not ack or (ack["version"], ack["accepted"]) != (version, True):
            found.append(f"retained ack is {ack}")
        if "alerts/_agent" in retained:
            found.append(f"device alert still raised: {retained['alerts/_agent']!r}")
        if retained.get("availability") != b"online":
            found.append(f"availability is {retained.get('availability')!r}")
        return found
