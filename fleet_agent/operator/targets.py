"""What the fleet client sends and how it knows the answers (pure but for building paho's
client): a target made ready to publish (versioned, validated with the agent's own decoder),
the matchers that recognise a target's ack and a command's result among the changes, and the
paho client configured from the connection settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet_agent.model import FieldError
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.errors import InvalidTarget
from fleet_agent.operator.fleet import Change
from fleet_agent.operator.wire import Ack, CommandResult, Target
from fleet_agent.validate import decode_target

TargetInput = Target | dict[str, Any] | bytes | str
Version = int | None | Literal["auto"]
MAX_QUEUED = 1000


def prepare(
    target: TargetInput, version: Version, next_version: Callable[[], int]
) -> tuple[bytes, int | None]:
    """The payload to publish and its version; raises `InvalidTarget` with every error.

    `version="auto"` keeps a version the document has, else takes `next_version()`; an int
    sets it; None leaves the document as it is."""
    doc = _as_document(target)
    if version == "auto":
        if doc.get("version") is None:
            doc["version"] = next_version()
    elif version is not None:
        doc["version"] = version
    payload = msgspec.json.encode(doc)
    decoded = decode_target(payload)
    if isinstance(decoded, list):
        raise InvalidTarget(decoded)
    return payload, decoded.version


def _as_document(target: TargetInput) -> dict[str, Any]:
    if isinstance(target, Target):
        doc: Any = msgspec.to_builtins(target)
    elif isinstance(target, bytes | str):
        try:
            doc = msgspec.json.decode(target)
        except msgspec.DecodeError as exc:
            raise InvalidTarget([FieldError("$", f"invalid JSON: {exc}")]) from exc
    else:
        doc = dict(target)
    if not isinstance(doc, dict):
        raise InvalidTarget([FieldError("$", "a target is a JSON object")])
    return doc


def ack_of(device_id: str, version: int | None) -> Callable[[Change], Ack | None]:
    def match(change: Change) -> Ack | None:
        if change.kind != "ack" or change.device_id != device_id or not change.live:
            return None
        ack = change.device.ack if change.device else None
        if ack is None:
            return None
        # a 413 ack cannot name the version (the payload was not read)
        ours = (
            version is None or ack.version == version or (ack.version is None and not ack.accepted)
        )
        return ack if ours else None

    return match


def result_of(request_id: str) -> Callable[[Change], CommandResult | None]:
    def match(change: Change) -> CommandResult | None:
        result = change.result
        return result if result is not None and result.request_id == request_id else None

    return match


def make_paho(conn: Connection, client_id: str) -> mqtt.Client:
    """A paho client with the connection's protocol, credentials and TLS, guarded callbacks and
    a bounded offline queue; it reconnects by itself (1 to 30 s)."""
    protocol = mqtt.MQTTv5 if conn.mqtt_protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.suppress_exceptions = True
    client.max_queued_messages_set(MAX_QUEUED)
    if conn.mqtt_username:
        client.username_pw_set(conn.mqtt_username, conn.mqtt_password)
    if conn.tls:
        client.tls_set(
            ca_certs=conn.mqtt_ca_file, certfile=conn.mqtt_cert_file, keyfile=conn.mqtt_key_file
        )
    client.reconnect_delay_set(1, 30)
    return client
