"""A real MQTT client for tests: watches a device's topics and publishes targets and commands."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.integration.helpers import wait_for


class MqttProbe:
    """Subscribes to `{prefix}/{device}/#` (and optionally more) and keeps what arrived."""

    def __init__(
        self,
        host: str,
        port: int,
        device_id: str,
        prefix: str = "fleet",
        v5: bool = True,
        certs: dict[str, Path] | None = None,
        also: tuple[str, ...] = (),
    ) -> None:
        self.base = f"{prefix}/{device_id}"
        self.latest: dict[str, bytes] = {}
        self.messages: list[tuple[str, bytes, Any]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        if certs is not None:
            self.client.tls_set(
                ca_certs=str(certs["ca.crt"]),
                certfile=str(certs["client.crt"]),
                keyfile=str(certs["client.key"]),
            )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(f"{self.base}/#", 1), ("replies/#", 1), *((topic, 1) for topic in also)]
        )
        self.client.connect(host, port)
        self.client.loop_start()
        wait_for(self.client.is_connected, timeout=10, what="probe connected")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.latest[message.topic] = bytes(message.payload)
            self.messages.append((message.topic, bytes(message.payload), message.properties))

    def json(self, suffix: str) -> Any:
        with self._lock:
            raw = self.latest.get(f"{self.base}/{suffix}")
        return json.loads(raw) if raw else None

    def raw(self, suffix: str) -> bytes | None:
        with self._lock:
            return self.latest.get(f"{self.base}/{suffix}")

    def all(self, suffix: str) -> list[Any]:
        with self._lock:
            topic = f"{self.base}/{suffix}"
            return [json.loads(p) for t, p, _ in self.messages if t == topic and p]

    def publish(
        self, suffix: str, payload: bytes | str | dict[str, Any], retain: bool = False, **props: Any
    ) -> None:
        data = json.dumps(payload) if isinstance(payload, dict | list) else payload
        properties = None
        if props:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            for key, value in props.items():
                setattr(properties, key, value)
        info = self.client.publish(
            f"{self.base}/{suffix}", data, qos=1, retain=retain, properties=properties
        )
        info.wait_for_publish(10)

    def wait_json(self, suffix: str, predicate: Any = bool, timeout: float = 30.0) -> Any:
        return wait_for(
            lambda: (doc := self.json(suffix)) is not None and predicate(doc) and doc,
            timeout=timeout,
            what=f"{suffix} matching",
        )
