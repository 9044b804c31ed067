"""The cloud-side client of the fleet: one typed connection to the broker under every operator
tool (CLI, dashboard, recorder, rollouts), as client-go is under kubectl.

It follows every device's retained topics into an in-memory model (`fleet.Device`), tells
listeners what changed, publishes versioned targets and waits for their acks, and sends commands
and waits for their results by `requestId`. paho's network thread only hands messages over; one
dispatcher thread folds them into the model and calls listeners, so a slow listener never
stalls the connection. See docs/client.md for a tour.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet_agent.operator import fleet, topics
from fleet_agent.operator.changes import ChangeStream, Listeners
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.errors import (
    BrokerUnreachable,
    FleetClientError,
    InvalidTarget,
    WaitTimeout,
)
from fleet_agent.operator.fleet import Change, Device
from fleet_agent.operator.targets import (
    TargetInput,
    Version,
    ack_of,
    make_paho,
    prepare,
    result_of,
)
from fleet_agent.operator.wire import Ack, CommandResult

log = structlog.get_logger(__name__)
T = TypeVar("T")


class FleetClient:
    """A connection to the fleet's broker and the model of what the devices report.

    `devices`: follow only these device ids (default: every device under the prefix).
    `events`: also receive the non-retained `events` of the devices as `Change`s.
    Use as a context manager, or call `connect()` and `close()`.
    """

    def __init__(
        self,
        connection: Connection,
        devices: Iterable[str] | None = None,
        *,
        events: bool = False,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.prefix = connection.topic_prefix
        self.client_id = client_id or f"fleet-operator-{uuid.uuid4().hex[:10]}"
        self.clock = clock
        self._filters = topics.subscriptions(self.prefix, devices, events)
        self._private = f"{self.prefix}/_operator/{self.client_id}"
        self._devices: dict[str, Device] = {}
        self._lock = threading.Condition()
        self._inbox: queue.Queue[tuple[str, bytes, bool, Any] | None] = queue.Queue()
        self._listeners = Listeners()
        self._synced = threading.Event()
        self._requests: dict[str, str] = {}  # requestId -> device, for replies to our topic
        self._connect_error: str | None = None
        self._mqtt = self._make_client()
        self._dispatcher = threading.Thread(target=self._dispatch, name="fleet-client", daemon=True)

    # connection ---------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> FleetClient:
        """Connect, subscribe, and return once every retained message has been read (a
        round trip through the broker after the subscription), or raise `BrokerUnreachable`."""
        if self._dispatcher.is_alive():
            return self  # connected already (`with open_client(...) as client:`)
        self._dispatcher.start()
        try:
            self._mqtt.connect_async(self.connection.host, self.connection.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise BrokerUnreachable(f"cannot connect to {self.connection.mqtt_url}: {exc}") from exc
        self._mqtt.loop_start()
        if not self._synced.wait(timeout):
            if self._mqtt.is_connected():  # the marker topic is denied: go on without it
                log.warning("no sync marker came back; the snapshot may be incomplete")
                return self
            self.close()
            why = self._connect_error or "no answer"
            url = self.connection.mqtt_url
            raise BrokerUnreachable(f"cannot reach the broker at {url} within {timeout:g}s: {why}")
        return self

    @property
    def synced(self) -> bool:
        """Whether the sync marker came back, i.e. the retained snapshot was read completely."""
        return self._synced.is_set()

    def close(self) -> None:
        """Disconnect and stop the dispatcher; open change streams end."""
        self._mqtt.disconnect()
        self._mqtt.loop_stop()
        self._inbox.put(None)
        if self._dispatcher.is_alive() and threading.current_thread() is not self._dispatcher:
            self._dispatcher.join(5)
        self._listeners.close()

    def __enter__(self) -> FleetClient:
        return self.connect()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._mqtt.is_connected()

    # the model ----------------------------------------------------------------------------

    def devices(self) -> dict[str, Device]:
        """A snapshot of every device seen so far, by id (the `Device`s are immutable)."""
        with self._lock:
            return dict(self._devices)

    def device(self, device_id: str) -> Device | None:
        with self._lock:
            return self._devices.get(device_id)

    def on_change(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call `callback` (on the dispatcher thread) for every change; returns an unsubscriber.
        An exception in a callback is logged and never stops the client."""
        return self._listeners.add(callback)

    def changes(self, maxsize: int = 0) -> ChangeStream:
        """An iterator over changes from now on (`with client.changes() as stream:`)."""
        return self._listeners.stream(maxsize)

    def wait_until(
        self, predicate: Callable[[dict[str, Device]], T | None], timeout: float = 30.0
    ) -> T:
        """Block until `predicate(devices)` returns something truthy and return it; raise
        `WaitTimeout` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(dict(self._devices))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"condition not met within {timeout:g}s")
                self._lock.wait(left)

    # targets ------------------------------------------------------------------------------

    def next_version(self, device_id: str) -> int:
        """The device's last accepted target version + 1 (1 when none is known)."""
        device = self.device(device_id)
        accepted = device.accepted_version if device else None
        return 1 if accepted is None else accepted + 1

    def publish_target(
        self, device_id: str, target: TargetInput, *, version: Version = "auto"
    ) -> int | None:
        """Validate and publish `target` as the device's retained target; returns its version.

        `version="auto"` keeps a version the document has, else takes `next_version`; an int
        sets it; None publishes the document as it is. Raises `InvalidTarget` (nothing sent)."""
        payload, number = self._prepared(device_id, target, version)
        self._publish(topics.device_topic(self.prefix, device_id, "target"), payload, retain=True)
        return number

    def apply(
        self,
        device_id: str,
        target: TargetInput,
        *,
        version: Version = "auto",
        timeout: float = 30.0,
        restore_on_reject: bool = True,
    ) -> Ack:
        """Publish a target and wait for the device's ack of it (accepted or not).

        With `restore_on_reject`, a target the device rejects does not stay retained: the
        retained target it replaced is put back (or the topic cleared when there was none),
        so the device's next reconnect does not meet it again."""
        payload, number = self._prepared(device_id, target, version)
        device = self.device(device_id)
        previous = device.target_payload if device else None
        topic = topics.device_topic(self.prefix, device_id, "target")
        waiter = self._listeners.waiter(ack_of(device_id, number))
        try:
            self._publish(topic, payload, True)
            ack: Ack = waiter.wait(timeout, f"no ack from {device_id} within {timeout:g}s")
        finally:
            self._listeners.drop(waiter)
        if not ack.accepted and restore_on_reject:
            self._publish(topic, previous or b"", True)
        return ack

    def clear_target(self, device_id: str) -> None:
        """Remove the retained target (the agent then touches nothing, ack 204)."""
        self._publish(topics.device_topic(self.prefix, device_id, "target"), b"", retain=True)

    def forget_device(self, device_id: str) -> int:
        """Clear every retained topic of a device that this client has seen (a decommissioned
        device, the end of a demo); returns how many. Its agent must be stopped first, or it
        publishes them again."""
        device = self.device(device_id)
        if device is None:
            return 0
        suffixes = ["availability", "state", "info", "summary", "target", "target/ack"]
        for kind in ("services", "alerts", "history"):
            suffixes += [f"{kind}/{name}" for name in getattr(device, kind)]
        for suffix in suffixes:
            self._publish(topics.device_topic(self.prefix, device_id, suffix), b"", True)
        return len(suffixes)

    def _prepared(
        self, device_id: str, target: TargetInput, version: Version
    ) -> tuple[bytes, int | None]:
        return prepare(target, version, lambda: self.next_version(device_id))

    # commands -----------------------------------------------------------------------------

    def command(
        self,
        device_id: str,
        name: str,
        body: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> CommandResult:
        """Send `cmd/{name}` with a fresh `requestId` and wait for its result (MQTT 5 response
        topic when the protocol has it, `cmd/result` always)."""
        request_id = uuid.uuid4().hex
        payload = msgspec.json.encode({**(body or {}), "requestId": request_id})
        properties = None
        if self.connection.mqtt_protocol == "5":
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            # below the device's `replies/`: the only response topics an agent honours
            properties.ResponseTopic = self._reply_topic(device_id)
            properties.CorrelationData = request_id.encode()
        with self._lock:
            self._requests[request_id] = device_id
        waiter = self._listeners.waiter(result_of(request_id))
        try:
            topic = topics.device_topic(self.prefix, device_id, f"cmd/{name}")
            self._publish(topic, payload, retain=False, properties=properties)
            result: CommandResult = waiter.wait(
                timeout, f"no result from {device_id} within {timeout:g}s"
            )
        finally:
            self._listeners.drop(waiter)
            with self._lock:
                self._requests.pop(request_id, None)
        return result

    def retry(
        self, device_id: str, service: str | None = None, timeout: float = 10.0
    ) -> CommandResult:
        """`cmd/retry`: reset the backoff of one service (or every service in error)."""
        return self.command(device_id, "retry", {"service": service} if service else {}, timeout)

    def reconcile(self, device_id: str, timeout: float = 10.0) -> CommandResult:
        return self.command(device_id, "reconcile", {}, timeout)

    # paho side ----------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = make_paho(self.connection, self.client_id)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _publish(
        self, topic: str, payload: bytes, retain: bool, properties: Properties | None = None
    ) -> None:
        if not self._mqtt.is_connected():
            raise BrokerUnreachable(f"not connected to {self.connection.mqtt_url}")
        info = self._mqtt.publish(topic, payload, qos=1, retain=retain, properties=properties)
        try:
            info.wait_for_publish(10)
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnreachable(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise BrokerUnreachable(f"the broker did not confirm the publish to {topic}")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connect_error = f"connection refused: {reason}"
            return
        private = [f"{self._private}/sync", self._reply_topic("+")]
        # The fleet's topics at QoS 0: a broker holds at most `max_queued_messages` (Mosquitto:
        # 1000) QoS 1 messages per client and drops the rest, so a QoS 1 subscription lost most
        # of a 1,000-device snapshot (and the sync marker behind it). Retained state comes
        # again after every reconnect; our own sync and reply topics stay at QoS 1.
        client.subscribe([(f, 0) for f in self._filters] + [(f, 1) for f in private])

    def _on_connect_fail(self, _client: mqtt.Client, _u: Any) -> None:
        self._connect_error = "connection failed"

    def _on_subscribe(self, client: mqtt.Client, *_: Any) -> None:
        client.publish(f"{self._private}/sync", b"", qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        self._inbox.put((message.topic, bytes(message.payload), bool(message.retain), props))

    # dispatcher ---------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while (item := self._inbox.get()) is not None:
            try:
                change = self._fold(*item)
            except Exception:  # the dispatcher must outlive any bad message
                log.exception("could not handle a message", topic=item[0])
                continue
            if change is not None:
                self._listeners.publish(change)

    def _fold(self, topic: str, payload: bytes, retained: bool, props: Any) -> Change | None:
        if topic == f"{self._private}/sync":
            self._synced.set()
            return None
        if topic.endswith(f"/replies/{self.client_id}"):
            return self._reply(topic, payload, props)
        parsed = topics.parse(self.prefix, topic)
        if parsed is None:
            return None
        with self._lock:
            device, change = fleet.apply(
                self._devices.get(parsed.device), parsed, payload, retained, self.clock()
            )
            self._devices[parsed.device] = device
            self._lock.notify_all()
        return change

    def _reply_topic(self, device_id: str) -> str:
        return topics.device_topic(self.prefix, device_id, f"replies/{self.client_id}")

    def _reply(self, topic: str, payload: bytes, props: Any) -> Change | None:
        try:
            result = msgspec.json.decode(payload, type=CommandResult)
        except msgspec.MsgspecError:
            return None
        correlation = getattr(props, "CorrelationData", None)
        request_id = result.request_id or (correlation.decode() if correlation else "")
        with self._lock:
            device_id = self._requests.get(request_id, "")
        if topic != self._reply_topic(device_id):
            return None  # not ours, or another device answering for it
        return Change(
            device_id, "result", True, result=msgspec.structs.replace(result, request_id=request_id)
        )


__all__ = [
    "BrokerUnreachable",
    "Change",
    "ChangeStream",
    "Device",
    "FleetClient",
    "FleetClientError",
    "InvalidTarget",
    "WaitTimeout",
]
