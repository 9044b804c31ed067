"""The outbox keeps the latest value of every retained topic until the broker acknowledged it."""

from __future__ import annotations

import threading
import time

from fleet_agent.outbox import Message, Outbox, Sender


def _hand_over(box: Outbox, first_mid: int = 1) -> dict[str, int]:
    mids: dict[str, int] = {}
    for mid, message in enumerate(box.take(), start=first_mid):
        box.sent(message, mid)
        mids[message.topic] = mid
    return mids


def test_only_the_latest_value_of_a_retained_topic_is_handed_over() -> None:
    box = Outbox()
    for version in range(500):
        box.put("d/target/ack", str(version).encode())
    assert box.take() == [Message("d/target/ack", b"499", True)]


def test_a_value_stays_until_its_puback_arrives() -> None:
    box = Outbox()
    box.put("d/state", b"1")
    mids = _hand_over(box)
    assert box.take() == []  # in flight: not handed over twice
    assert box.pending() == 1
    box.acked(mids["d/state"])
    assert box.pending() == 0


def test_a_value_refused_by_paho_is_offered_again() -> None:
    box = Outbox()
    box.put("d/services/a", b"x")
    [message] = box.take()
    box.refused(message)
    assert box.take() == [message]


def test_a_newer_value_while_the_older_is_in_flight_is_sent_and_not_lost_by_the_old_ack() -> None:
    box = Outbox()
    box.put("d/services/a", b"old")
    mids = _hand_over(box)
    box.put("d/services/a", b"new")
    box.acked(mids["d/services/a"])  # the PUBACK of the old value
    assert box.take() == [Message("d/services/a", b"new", True)]


def test_a_reconnect_hands_every_unacknowledged_value_over_again() -> None:
    box = Outbox()
    box.put("d/services/a", b"")
    box.put("d/services/b", b"")
    _hand_over(box)
    box.reconnected()
    assert {m.topic for m in box.take()} == {"d/services/a", "d/services/b"}


def test_the_window_bounds_what_is_handed_to_paho_at_once() -> None:
    box = Outbox(window=10)
    for n in range(1000):
        box.put(f"d/services/s{n}", b"")
    assert len(_hand_over(box)) == 10
    assert box.take() == []
    box.acked(1)
    assert len(box.take()) == 1


def test_events_wait_in_a_bounded_queue_that_drops_the_oldest() -> None:
    box = Outbox(window=1000, max_messages=3)
    for n in range(5):
        box.put_message(Message("d/events", str(n).encode(), False))
    assert [m.payload for m in box.take()] == [b"2", b"3", b"4"]
    assert box.dropped == 2


def test_a_refused_event_goes_back_in_front() -> None:
    box = Outbox()
    box.put_message(Message("d/events", b"1", False))
    box.put_message(Message("d/events", b"2", False))
    first, _ = box.take()
    box.refused(first)
    assert box.take()[0] == first


class FakeBroker:
    """paho as the sender sees it: refuses while its queue is full, PUBACKs later."""

    def __init__(self, refuse_first: int) -> None:
        self.refuse = refuse_first
        self.delivered: dict[str, bytes] = {}
        self.waiting: dict[int, Message] = {}
        self.next_mid = 0
        self.lock = threading.Lock()

    def publish(self, message: Message) -> int | None:
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                return None
            self.next_mid += 1
            self.waiting[self.next_mid] = message
            return self.next_mid

    def puback_all(self, sender: Sender) -> None:
        with self.lock:
            waiting, self.waiting = self.waiting, {}
        for mid, message in waiting.items():
            self.delivered[message.topic] = message.payload
            sender.acked(mid)


def test_the_sender_delivers_the_latest_value_of_every_topic_despite_refusals() -> None:
    box = Outbox(window=10)
    broker = FakeBroker(refuse_first=2)
    sender = Sender(box, broker.publish, lambda: True)
    sender.start()
    try:
        for version in range(300):
            for topic in ("d/target/ack", "d/state", f"d/services/s{version % 50}"):
                box.put(topic, str(version).encode())
            sender.wake()
        deadline = time.monotonic() + 10
        while box.pending() and time.monotonic() < deadline:
            broker.puback_all(sender)
            time.sleep(0.01)
    finally:
        sender.stop()
    assert box.pending() == 0
    assert broker.delivered["d/target/ack"] == b"299"
    assert broker.delivered["d/state"] == b"299"
    assert all(broker.delivered[f"d/services/s{n}"] == str(250 + n).encode() for n in range(50))


def test_an_idle_sender_sleeps_until_woken_and_still_retries_what_was_refused() -> None:
    """No polling while there is nothing to send (a fleet of idle agents on one machine pays
    for every wake-up); a refused message is offered again without any new wake."""
    box = Outbox(window=10)
    broker = FakeBroker(refuse_first=1)
    looks: list[float] = []

    def connected() -> bool:
        looks.append(time.monotonic())
        return True

    sender = Sender(box, broker.publish, connected)
    sender.start()
    try:
        time.sleep(1.2)
        assert looks == []  # asleep: it was not woken
        box.put("d/state", b"1")
        sender.wake()  # the first offer is refused; nothing wakes the sender again
        deadline = time.monotonic() + 5
        while "d/state" not in broker.delivered and time.monotonic() < deadline:
            broker.puback_all(sender)
            time.sleep(0.05)
        assert broker.delivered["d/state"] == b"1"
        time.sleep(0.2)
        before = len(looks)
        time.sleep(1.2)
        assert len(looks) == before  # delivered and acknowledged: asleep again
    finally:
        sender.stop()
