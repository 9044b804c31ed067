"""MQTT adapter: the only module that speaks paho-mqtt.

It connects (MQTT 5 or 3.1.1, plain or TLS), keeps the Last Will `offline` on `availability`,
reconnects by itself with a jittered, capped backoff, and after every (re)connect subscribes
again and republishes every retained topic of ours. Retained topics are sent only when their
content changed; while disconnected only the latest value per topic is kept (bounded memory).
Every callback is guarded: an exception must never kill paho's network thread.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet_agent import feed
from fleet_agent.commands import COMMANDS, CommandResult
from fleet_agent.config import Settings
from fleet_agent.model import Ack
from fleet_agent.report import Report

log = structlog.get_logger(__name__)
RECONNECT_CAP = 60.0
RETAINED_PER_SERVICE = ("services", "alerts", "history")
MAX_QUEUED = 1000
HOLD = 1.0  # seconds a provisional report waits for the pass that follows its steps


def reconnect_delay(attempt: int, cap: float = RECONNECT_CAP) -> int:
    """Full-jitter exponential backoff in whole seconds (paho sleeps in whole seconds)."""
    ceiling = min(cap, 2.0 ** min(attempt, 16))
    return max(1, round(random.uniform(ceiling / 2, ceiling)))


def _client(settings: Settings) -> mqtt.Client:
    url = urlsplit(settings.mqtt_url)
    protocol = mqtt.MQTTv5 if settings.mqtt_protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"fleet-agent-{settings.device_id}",
        protocol=protocol,
        transport="tcp",
    )
    client.suppress_exceptions = True
    client.enable_logger(logging.getLogger("paho.mqtt.client"))  # rendered by logs.configure
    client.max_queued_messages_set(MAX_QUEUED)
    client.on_socket_open = _no_delay
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
    if url.scheme == "mqtts":
        client.tls_set(
            ca_certs=settings.mqtt_ca_file,
            certfile=settings.mqtt_cert_file,
            keyfile=settings.mqtt_key_file,
        )
    return client


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Send each packet at once: paho leaves Nagle on, which holds the second of the messages a
    pass publishes until the broker's delayed ACK of the first (up to 40 ms on Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # not a TCP socket: no matter
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttLink:
    """Targets and commands in; statuses, alerts, history, events and acks out."""

    def __init__(
        self,
        settings: Settings,
        on_target: Callable[[bytes], Any] | None,
        on_command: Callable[[str, bytes], CommandResult],
    ) -> None:
        url = urlsplit(settings.mqtt_url)  # Settings has checked it
        self.host = url.hostname or ""
        self.port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        self.base = f"{settings.topic_prefix}/{settings.device_id}"
        self.on_target = on_target
        self.on_command = on_command
        self.client = _client(settings)
        self.client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        self.client.on_connect = self._guarded(self._on_connect)
        self.client.on_disconnect = self._guarded(self._on_disconnect)
        self.client.on_connect_fail = self._guarded(self._on_connect_fail)
        self.client.on_message = self._guarded(self._on_message)
        self._lock = threading.RLock()
        self._report: Report | None = None  # the latest, with its alerts and history
        self._snapshot: dict[str, tuple[bytes, bytes]] = {}
        self._ack: bytes | None = None
        self._attempt = 0
        self._stopping = False
        self._leftovers: set[str] = set()  # retained topics of ours found on the broker
        self._extra: dict[str, bytes] = {}  # retained topics beside the feed: info, summary, HA
        self._listeners: dict[str, Callable[[bytes], None]] = {}
        self._flush_timer: threading.Timer | None = None  # sends a held provisional report

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Say `offline` ourselves (the Will only fires on a lost link), then disconnect."""
        self._stopping = True
        with self._lock:
            self._cancel_flush()
            if self._report is not None and self._report.provisional:
                self._sync()  # what was held goes out before `offline`
        if self.client.is_connected():
            info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=3)
            except (RuntimeError, ValueError):
                log.warning("could not confirm the offline message")
        self.client.disconnect()
        self.client.loop_stop()

    # Publisher interface -------------------------------------------------------------------

    def publish(self, report: Report) -> None:
        """Send what the core decided: statuses, alerts, history (retained), and events.

        A provisional report (steps under way) is held for up to `HOLD` seconds: the report
        of the pass that follows when they end replaces it, so a quick replacement sends each
        retained topic once; a slow one still shows its progress after `HOLD`."""
        with self._lock:
            self._report = report
            if report.provisional:
                if self._flush_timer is None:
                    self._flush_timer = threading.Timer(HOLD, self._flush)
                    self._flush_timer.daemon = True
                    self._flush_timer.start()
            else:
                self._cancel_flush()
                self._sync()
        for event in report.events:
            self._send(self.topic("events"), msgspec.json.encode(event), retain=False)

    def _flush(self) -> None:
        with self._lock:
            self._flush_timer = None
            if not self._stopping:
                self._sync()

    def _cancel_flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def ack(self, ack: Ack) -> None:
        with self._lock:
            self._ack = msgspec.json.encode(ack)
            self._send(self.topic("target/ack"), self._ack)

    # Integrations (info, summary, Home Assistant) ---------------------------------------------

    def retain(self, topic: str, payload: bytes) -> None:
        """A retained topic beside the feed (any full topic): sent now if connected and again
        after every reconnect. An empty payload clears it on the broker and forgets it."""
        with self._lock:
            if payload:
                self._extra[topic] = payload
            else:
                self._extra.pop(topic, None)
            self._send(topic, payload)

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Subscribe to a further topic (again after every reconnect). `handler` runs on the
        network thread: it must only hand the payload over."""
        with self._lock:
            self._listeners[topic] = handler
        if self.client.is_connected():
            self.client.subscribe(topic, qos=1)

    # internals -----------------------------------------------------------------------------

    def _sync(self) -> None:
        """Send what changed in content; clear topics that are no longer ours."""
        wanted = feed.retained(self._report) if self._report is not None else {}
        for suffix, (payload, key) in wanted.items():
            if self._snapshot.get(suffix, (b"", b""))[1] != key:
                self._snapshot[suffix] = (payload, key)
                self._send(self.topic(suffix), payload)
        gone = [suffix for suffix in self._snapshot if suffix not in wanted]
        if self._report is not None:  # only a report says what is no longer ours
            gone += list(self._leftovers - wanted.keys())  # from an earlier run of the agent
            self._leftovers.clear()
        for suffix in gone:
            self._snapshot.pop(suffix, None)
            self._send(self.topic(suffix), b"")

    def _send(self, topic: str, payload: bytes, retain: bool = True) -> None:
        if self.client.is_connected():
            self.client.publish(topic, payload, qos=1, retain=retain)

    def _found_retained(self, suffix: str) -> None:
        with self._lock:
            if suffix in self._snapshot:
                return
            self._leftovers.add(suffix)
            if self._report is not None:
                self._sync()

    def _republish(self) -> None:
        with self._lock:
            if self._ack is not None:
                self._send(self.topic("target/ack"), self._ack)
            for suffix, (payload, _) in self._snapshot.items():
                self._send(self.topic(suffix), payload)
            for topic, payload in self._extra.items():
                self._send(topic, payload)

    def _guarded(self, callback: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                callback(*args)
            except Exception:
                log.exception("MQTT callback failed", callback=callback.__name__)

        return run

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused", reason=str(reason))
            return
        self._attempt = 0
        log.info("MQTT connected", host=self.host, port=self.port)
        subscriptions: list[tuple[str, Any]] = [(self.topic(f"cmd/{n}"), 1) for n in COMMANDS]
        # What an earlier run left retained (a service that left the target meanwhile); the
        # echo of the agent's own live publications arrives without the retain flag: ignored.
        subscriptions += [(self.topic(f"{kind}/+"), 1) for kind in RETAINED_PER_SERVICE]
        if self.on_target is not None:
            subscriptions.append((self.topic("target"), 1))
        with self._lock:
            subscriptions += [(topic, 1) for topic in self._listeners]
        client.subscribe(subscriptions)
        client.publish(self.topic("availability"), "online", qos=1, retain=True)
        self._republish()

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._stopping:
            return
        log.warning("MQTT disconnected", reason=str(reason))
        self._backoff(client)

    def _on_connect_fail(self, client: mqtt.Client, _u: Any) -> None:
        self._backoff(client)

    def _backoff(self, client: mqtt.Client) -> None:
        self._attempt += 1
        delay = reconnect_delay(self._attempt)
        client.reconnect_delay_set(delay, delay)
        log.info("MQTT reconnecting", in_seconds=delay, attempt=self._attempt)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        listener = self._listeners.get(message.topic)
        if listener is not None:
            listener(bytes(message.payload))
            return
        suffix = message.topic.removeprefix(self.base + "/")
        if suffix.split("/", 1)[0] in RETAINED_PER_SERVICE:
            if message.retain and message.payload:
                self._found_retained(suffix)
            return
        if message.topic == self.topic("target"):
            if self.on_target is not None:
                self.on_target(bytes(message.payload))
            return
        name = message.topic.rsplit("/", 1)[-1]
        if message.retain:  # a retained command would run again on every reconnect
            log.warning("retained command ignored", command=name)
            return
        result = msgspec.json.encode(self.on_command(name, bytes(message.payload)))
        self._send(self.topic("cmd/result"), result, retain=False)
        props = getattr(message, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None)
        if response_topic and self.client.is_connected():
            reply = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            correlation = getattr(props, "CorrelationData", None)
            if correlation is not None:
                reply.CorrelationData = correlation
            self.client.publish(response_topic, result, qos=1, properties=reply)
