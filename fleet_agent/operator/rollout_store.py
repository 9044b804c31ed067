"""The retained home of a rollout on the broker: `{p}/_rollouts/{name}` (its whole state) and
`{p}/_rollouts/{name}/control` (the last pause/resume/abort/rollback request).

One paho connection of its own (the `FleetClient` follows device topics only): it keeps the
newest state and control request it received and publishes the state retained at QoS 1,
returning only once the broker confirmed it, so the controller's intent is stored before it
publishes any device's target.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet_agent.operator.connection import Connection
from fleet_agent.operator.errors import BrokerUnreachable
from fleet_agent.operator.rollout_model import State, decode, encode

MAX_STATE_BYTES = 1024 * 1024  # Mosquitto's default message_size_limit is far higher


class Control(msgspec.Struct, frozen=True):
    id: str
    action: str
    at: float = 0.0


def state_topic(prefix: str, name: str) -> str:
    return f"{prefix}/_rollouts/{name}"


class Store:
    def __init__(self, connection: Connection, name: str) -> None:
        self.topic = state_topic(connection.topic_prefix, name)
        self.control_topic = f"{self.topic}/control"
        self.connection = connection
        self.state: State | None = None
        self.state_problem: str | None = None
        self.control: Control | None = None
        self._synced = threading.Event()
        self._sync_topic = f"{connection.topic_prefix}/_operator/{uuid.uuid4().hex[:10]}/sync"
        self._lock = threading.Lock()
        self._mqtt = self._client()

    def _client(self) -> mqtt.Client:
        conn = self.connection
        protocol = mqtt.MQTTv5 if conn.mqtt_protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        client.suppress_exceptions = True
        if conn.mqtt_username:
            client.username_pw_set(conn.mqtt_username, conn.mqtt_password)
        if conn.tls:
            client.tls_set(
                ca_certs=conn.mqtt_ca_file, certfile=conn.mqtt_cert_file, keyfile=conn.mqtt_key_file
            )
        client.on_connect = self._on_connect
        client.on_subscribe = lambda c, *_: c.publish(self._sync_topic, b"", qos=1)
        client.on_message = self._on_message
        return client

    def connect(self, timeout: float = 10.0) -> Store:
        try:
            self._mqtt.connect_async(self.connection.host, self.connection.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise BrokerUnreachable(f"cannot connect to {self.connection.mqtt_url}: {exc}") from exc
        self._mqtt.loop_start()
        if not self._synced.wait(timeout):
            self.close()
            raise BrokerUnreachable(f"no answer from {self.connection.mqtt_url} in {timeout:g}s")
        return self

    def close(self) -> None:
        self._mqtt.disconnect()
        self._mqtt.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(self.topic, 1), (self.control_topic, 1), (self._sync_topic, 1)])

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        with self._lock:
            if message.topic == self._sync_topic:
                self._synced.set()
            elif message.topic == self.topic:
                self._fold_state(payload)
            elif message.topic == self.control_topic:
                try:
                    self.control = msgspec.json.decode(payload, type=Control) if payload else None
                except msgspec.MsgspecError:
                    self.control = None

    def _fold_state(self, payload: bytes) -> None:
        if not payload:
            self.state, self.state_problem = None, None
            return
        try:
            self.state, self.state_problem = decode(payload), None
        except msgspec.MsgspecError as exc:
            self.state_problem = f"{self.topic} does not hold a rollout: {exc}"

    def snapshot(self) -> tuple[State | None, Control | None]:
        with self._lock:
            return self.state, self.control

    def save(self, state: State) -> None:
        payload = encode(state)
        if len(payload) > MAX_STATE_BYTES:
            raise BrokerUnreachable(
                f"rollout state is {len(payload)} bytes (limit {MAX_STATE_BYTES}): split the "
                "fleet into several rollouts by label or device id glob"
            )
        self._publish(self.topic, payload)

    def clear(self) -> None:
        self._publish(self.topic, b"")
        self._publish(self.control_topic, b"")

    def send_control(self, action: str) -> Control:
        request = Control(uuid.uuid4().hex[:12], action, time.time())
        self._publish(self.control_topic, msgspec.json.encode(request))
        return request

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self._mqtt.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(10)
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnreachable(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise BrokerUnreachable(f"the broker did not confirm the publish to {topic}")
