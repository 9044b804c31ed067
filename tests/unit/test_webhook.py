"""Webhook delivery: the latest state per alert, in order, retried with backoff, signed."""

from __future__ import annotations

import hashlib
import hmac
import threading

import msgspec

from fleet_agent.config import Settings
from fleet_agent.integrations import webhook_body
from fleet_agent.model import Alert, AlertChange, iso
from fleet_agent.webhook import SIGNATURE_HEADER, Delivery, Outbox, Webhooks, signature
from tests.unit.factories import DEVICE, T0

URL = "http://127.0.0.1:9/hook"


def settings(**values: object) -> Settings:
    fields: dict[str, object] = {
        "webhook_url": URL, "webhook_retry_initial": 0.01, "webhook_retry_max": 0.04,
    }  # fmt: skip
    return Settings(device_id=DEVICE, **(fields | values))  # type: ignore[arg-type]


class FakeReceiver:
    """Answers with the codes it is given, then 200; records what it was sent."""

    def __init__(self, codes: list[int | Exception] | None = None) -> None:
        self.codes = list(codes or [])
        self.sent: list[tuple[bytes, dict[str, str]]] = []
        self.delivered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self.entered.set()
        self.gate.wait(5)
        self.sent.append((body, headers))
        answer = self.codes.pop(0) if self.codes else 200
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            self.delivered.set()
        return answer


def test_a_newer_body_for_a_pending_key_replaces_it_in_its_place() -> None:
    box = Outbox()
    box.put("alert/a", b"a1")
    box.put("alert/b", b"b1")
    box.put("alert/a", b"a2")
    assert list(box.pending().items()) == [("alert/a", b"a2"), ("alert/b", b"b1")]


def test_a_body_superseded_while_in_flight_stays_pending_for_the_next_attempt() -> None:
    box = Outbox()
    box.put("alert/a", b"raised")
    key, body = box.peek() or ("", b"")
    box.put("alert/a", b"cleared")
    box.done(key, body)
    assert box.pending() == {"alert/a": b"cleared"}
    box.done("alert/a", box.pending()["alert/a"])
    assert box.pending() == {}


def test_the_outbox_is_bounded_dropping_the_oldest_key() -> None:
    box = Outbox(limit=2)
    for key in ("a", "b", "c"):
        box.put(key, key.encode())
    assert list(box.pending()) == ["b", "c"]


def test_failures_are_retried_until_delivered_and_a_refusing_receiver_drops_the_body() -> None:
    receiver = FakeReceiver([OSError("refused"), 503, 429, 200, 400])
    delivery = Delivery(URL, settings(), receiver)
    delivery.thread.start()
    delivery.outbox.put("alert/a", b'{"n":1}')
    assert receiver.delivered.wait(5)
    assert [b for b, _ in receiver.sent] == [b'{"n":1}'] * 4
    delivery.outbox.put("alert/b", b'{"n":2}')  # answered 400: never retried
    for _ in range(200):
        if not delivery.outbox.pending():
            break
        threading.Event().wait(0.01)
    assert delivery.outbox.pending() == {} and len(receiver.sent) == 5
    delivery.outbox.close()
    delivery.thread.join(5)
    assert not delivery.thread.is_alive()


def test_a_receiver_that_was_down_gets_only_the_latest_state_of_each_alert_in_order() -> None:
    receiver = FakeReceiver([OSError("down")])
    receiver.gate.clear()  # the first attempt hangs like a dead receiver
    delivery = Delivery(URL, settings(), receiver)
    delivery.thread.start()
    delivery.outbox.put("a", b"a-raised")
    assert receiver.entered.wait(5)  # its delivery is under way, and hangs
    for body in (b"b-raised", b"a-escalated", b"a-cleared", b"b-escalated"):
        delivery.outbox.put(body.split(b"-")[0].decode(), body)
    receiver.gate.set()
    for _ in range(500):
        if not delivery.outbox.pending() and len(receiver.sent) >= 3:
            break
        threading.Event().wait(0.01)
    delivery.outbox.close()
    # the hanging attempt carried a-raised and failed; then the latest of a, then of b
    assert [b for b, _ in receiver.sent] == [b"a-raised", b"a-cleared", b"b-escalated"]


def test_each_request_is_signed_with_hmac_sha256_of_its_body_when_a_secret_is_set() -> None:
    receiver = FakeReceiver()
    delivery = Delivery(URL, settings(webhook_secret="k"), receiver)
    delivery.thread.start()
    delivery.outbox.put("summary", b'{"event":"summary"}')
    assert receiver.delivered.wait(5)
    delivery.outbox.close()
    body, headers = receiver.sent[0]
    want = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == want == signature("k", body)
    assert headers["Content-Type"] == "application/json"


def test_without_a_secret_there_is_no_signature_header() -> None:
    receiver = FakeReceiver()
    delivery = Delivery(URL, settings(), receiver)
    delivery.thread.start()
    delivery.outbox.put("summary", b"{}")
    assert receiver.delivered.wait(5)
    delivery.outbox.close()
    assert SIGNATURE_HEADER not in receiver.sent[0][1]


def test_every_configured_url_gets_its_own_outbox() -> None:
    hooks = Webhooks(settings(webhook_url="http://a/x, https://b/y"))
    hooks.post("summary", b"{}")
    assert [d.url for d in hooks.deliveries] == ["http://a/x", "https://b/y"]
    assert all(d.outbox.pending() == {"summary": b"{}"} for d in hooks.deliveries)


def test_the_body_is_the_alert_plus_its_event_and_a_cleared_one_is_stamped_when_cleared() -> None:
    alert = Alert(DEVICE, "nodered", "critical", "MaxRetriesExceeded", "gone", iso(T0), iso(T0), 3)
    raised = msgspec.json.decode(webhook_body(AlertChange("escalated", "nodered", alert), "x"))
    assert raised == {
        "event": "escalated", "deviceId": DEVICE, "service": "nodered", "severity": "critical",
        "type": "MaxRetriesExceeded", "message": "gone", "raisedAt": iso(T0),
        "updatedAt": iso(T0), "retryCount": 3,
    }  # fmt: skip
    cleared = msgspec.json.decode(
        webhook_body(AlertChange("cleared", "nodered", alert), iso(T0 + 9))
    )
    assert cleared["event"] == "cleared" and cleared["updatedAt"] == iso(T0 + 9)
