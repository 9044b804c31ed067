"""MQTT adapter: the only module that speaks paho-mqtt.

It connects (MQTT 5 or 3.1.1, plain or TLS), keeps the Last Will `offline` on `availability`,
reconnects by itself with a jittered, capped backoff, and after every (re)connect subscribes
again and republishes every retained topic of ours. Retained topics are sent only when their
content changed. Nothing is published from the caller's thread: everything goes through the
`Outbox` (latest value per retained topic, kept until the broker acknowledged it), which a
sender thread of ours hands to paho within a window and offers again when paho refuses.

Callbacks only hand over (the aiomqtt pattern): received targets and commands go to the agent's
receiver, acknowledgements to the outbox; decoding, persisting and acking never run on paho's
network thread, so a hostile payload or a slow disk never stalls its keepalive. Every callback
is guarded: an exception must never kill that thread.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from fleet_agent import feed
from fleet_agent.commands import COMMANDS, CommandResult
from fleet_agent.config import Settings
from fleet_agent.model import Ack
from fleet_agent.outbox import Message, Outbox, Sender
from fleet_agent.report import Report

log = structlog.get_logger(__name__)
RECONNECT_CAP = 60.0
RETAINED_PER_SERVICE = ("services", "alerts", "history")
MAX_QUEUED = 1000  # paho's own queue; the outbox's window keeps well below it
DRAIN_ON_STOP = 2.0  # seconds a clean stop waits for what is still to deliver
Respond = Callable[[CommandResult], None]


def ping_interval(keepalive: int) -> int:
    """The keepalive given to paho, so that a silent link is noticed within 1.5x `keepalive`.

    paho pings after one interval without incoming bytes and gives up one interval later,
    checking about once a second: 2 * interval + 2 <= 1.5 * keepalive."""
    return max(1, int(0.75 * keepalive) - 1)


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
    client.max_inflight_messages_set(100)
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
        on_command: Callable[[str, bytes, Respond], Any],
    ) -> None:
        """`on_target` and `on_command` must only hand over (they run on paho's thread);
        `on_command` gets a `respond` to call with the result from any thread."""
        url = urlsplit(settings.mqtt_url)  # Settings has checked it
        self.host = url.hostname or ""
        self.port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        self.base = f"{settings.topic_prefix}/{settings.device_id}"
        self.on_target = on_target
        self.on_command = on_command
        self.keepalive = ping_interval(settings.mqtt_keepalive)
        self.hold = settings.publish_hold  # seconds a provisional report waits for the next
        self.client = _client(settings)
        self.client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        self.client.on_connect = self._guarded(self._on_connect)
        self.client.on_disconnect = self._guarded(self._on_disconnect)
        self.client.on_connect_fail = self._guarded(self._on_connect_fail)
        self.client.on_message = self._guarded(self._on_message)
        self.client.on_publish = self._guarded(self._on_publish)
        self.client.on_subscribe = self._guarded(self._on_subscribe)
        self.outbox = Outbox()
        self.sender = Sender(self.outbox, self._publish_one, self.client.is_connected)
        self._lock = threading.RLock()
        self._report: Report | None = None  # the latest, with its alerts and history
        self._snapshot: dict[str, tuple[bytes, object]] = {}  # suffix -> (payload sent, key)
        self._ack: bytes | None = None
        self._attempt = 0
        self._stopping = False
        self._leftovers: set[str] = set()  # retained topics of ours found on the broker
        self._extra: dict[str, bytes] = {}  # retained topics beside the feed: info, summary, HA
        self._listeners: dict[str, Callable[[bytes], None]] = {}
        self._flush_timer: threading.Timer | None = None  # sends a held provisional report
        self._leftover_sub: tuple[int | None, list[str]] = (None, [])  # its mid and topics

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        self.sender.start()

    def say_offline(self) -> None:
        """A shutdown begins: send what is held and still to deliver (briefly), say `offline`
        ourselves (the Will only fires on a lost link). The link stays up for the reports of
        the passes that still end: `stop` sends them, then disconnects."""
        self._drain()
        self._stopping = True  # no reconnect says `online` again
        if self.client.is_connected():
            info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=3)
            except (RuntimeError, ValueError):
                log.warning("could not confirm the offline message")

    def stop(self) -> None:
        """Once no pass runs any more: send what is still to deliver, then disconnect, so the
        retained statuses end where the agent's memory does (a pass that ended after the
        disconnect remembered a restart that no status ever showed)."""
        if self._stopping:
            self._drain()
        else:
            self.say_offline()
        self.sender.stop()
        self.client.disconnect()
        self.client.loop_stop()

    def _drain(self) -> None:
        with self._lock:
            self._cancel_flush()
            if self._report is not None and self._report.provisional:
                self._sync()  # what was held goes out before `offline`
        deadline = time.monotonic() + DRAIN_ON_STOP
        while self.client.is_connected() and self.outbox.pending() and time.monotonic() < deadline:
            time.sleep(0.05)

    # Publisher interface -------------------------------------------------------------------

    def publish(self, report: Report) -> None:
        """Send what the core decided: statuses, alerts, history (retained), and events.

        A provisional report (steps under way) is held for up to `hold` seconds
        (FLEET_AGENT_PUBLISH_HOLD): the report of the pass that follows when they end replaces
        it, so a quick replacement sends each retained topic once; a slow one still shows its
        progress after `hold`."""
        with self._lock:
            self._report = report
            if report.provisional:
                if self._flush_timer is None:
                    self._flush_timer = threading.Timer(self.hold, self._flush)
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
        for suffix, topic in wanted.items():
            sent = self._snapshot.get(suffix)
            if sent is None or sent[1] != topic.key:
                payload = topic.payload
                self._snapshot[suffix] = (payload, topic.key)
                self._send(self.topic(suffix), payload)
        gone = [suffix for suffix in self._snapshot if suffix not in wanted]
        if self._report is not None:  # only a report says what is no longer ours
            gone += list(self._leftovers - wanted.keys())  # from an earlier run of the agent
            self._leftovers.clear()
        for suffix in gone:
            self._snapshot.pop(suffix, None)
            self._send(self.topic(suffix), b"")

    def _send(self, topic: str, payload: bytes, retain: bool = True) -> None:
        if retain:
            self.outbox.put(topic, payload)
        else:
            self.outbox.put_message(Message(topic, payload, False))
        self.sender.wake()

    def _publish_one(self, message: Message) -> int | None:
        """Hand one message to paho: its mid when paho took it, None when it refused."""
        info = self.client.publish(
            message.topic,
            message.payload,
            qos=1,
            retain=message.retain,
            properties=message.properties,
        )
        # NO_CONN: paho keeps a QoS 1 message and sends it once connected again
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return info.mid
        log.warning("MQTT publish refused, kept", topic=message.topic, rc=info.rc)
        return None

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):  # e.g. MQTT 5 code 135: retrying cannot help
            log.warning("MQTT publish refused by the broker", mid=mid, reason=str(reason))
        self.sender.acked(mid)

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
        if self.on_target is not None:
            subscriptions.append((self.topic("target"), 1))
        with self._lock:
            subscriptions += [(topic, 1) for topic in self._listeners]
        client.subscribe(subscriptions)
        self._look_for_leftovers(client)
        self.outbox.reconnected()
        self._send(self.topic("availability"), b"online")
        self._republish()

    def _look_for_leftovers(self, client: mqtt.Client) -> None:
        """What an earlier run left retained (a service that left the target meanwhile) comes
        with a subscription to our own per-service topics, which lasts only until its SUBACK:
        the broker sends the retained messages of a subscription before it reads our next
        packet, the UNSUBSCRIBE. Kept, it would bring every publication of ours back (MQTT
        3.1.1 has no noLocal): a message in for each one out. QoS 0: on a NATS cluster a QoS 1
        subscription is a JetStream consumer; a message lost with the link is looked for again
        at the next connect."""
        leftovers: Any = 0
        if client.protocol == mqtt.MQTTv5:  # not even the echo in the moment it lasts
            leftovers = SubscribeOptions(qos=0, noLocal=True)
        topics = [self.topic(f"{kind}/+") for kind in RETAINED_PER_SERVICE]
        _, mid = client.subscribe([(topic, leftovers) for topic in topics])
        with self._lock:
            self._leftover_sub = (mid, topics)

    def _on_subscribe(self, client: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        with self._lock:
            sub, topics = self._leftover_sub
            if mid != sub:
                return
            self._leftover_sub = (None, [])
        client.unsubscribe(topics)

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

    def _reply_allowed(self, topic: str) -> bool:
        """A command's MQTT 5 response topic is honoured only below `{p}/{d}/replies/`: whoever
        may send commands must not make the device publish anywhere else it may write."""
        return topic.startswith(self.base + "/replies/") and not any(c in topic for c in "+#")

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
        props = getattr(message, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)

        def respond(result: CommandResult) -> None:
            self._respond(msgspec.json.encode(result), response_topic, correlation)

        self.on_command(name, bytes(message.payload), respond)

    def _respond(self, result: bytes, response_topic: str | None, correlation: Any) -> None:
        self._send(self.topic("cmd/result"), result, retain=False)
        if response_topic and not self._reply_allowed(response_topic):
            log.warning("response topic ignored: not below replies/", topic=response_topic)
        elif response_topic:
            reply = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if correlation is not None:
                reply.CorrelationData = correlation
            self.outbox.put_message(Message(response_topic, result, False, reply))
            self.sender.wake()
