"""The receiver handles targets and commands on its own worker; targets coalesce; a target that
could not be stored is retried from memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from fleet_agent.commands import CommandResult
from fleet_agent.model import Ack
from fleet_agent.receiver import Receiver


def _wait(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.005)
    raise AssertionError("timed out")


class Recorder:
    def __init__(self, codes: list[int] | None = None) -> None:
        self.offered: list[bytes] = []
        self.threads: set[str] = set()
        self.codes = codes or []
        self.gate = threading.Event()
        self.gate.set()

    def offer(self, payload: bytes, _source: str) -> Ack:
        self.gate.wait(5)
        self.threads.add(threading.current_thread().name)
        self.offered.append(payload)
        code = self.codes.pop(0) if self.codes else 200
        return Ack(None, code == 200, code, "t")

    def command(self, name: str, _payload: bytes) -> CommandResult:
        self.threads.add(threading.current_thread().name)
        return CommandResult(name, True)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def receiver(recorder: Recorder) -> Iterator[Receiver]:
    box = Receiver(recorder.offer, recorder.command, retry_initial=0.01, retry_max=0.05)
    box.start()
    yield box
    box.stop()


def test_targets_are_handled_on_the_receiver_worker_not_the_caller(
    receiver: Receiver, recorder: Recorder
) -> None:
    receiver.target(b"1", "mqtt")
    _wait(lambda: recorder.offered)
    assert recorder.threads == {"receiver"}


def test_targets_arriving_while_one_is_handled_coalesce_into_the_newest(
    receiver: Receiver, recorder: Recorder
) -> None:
    recorder.gate.clear()
    receiver.target(b"first", "mqtt")
    time.sleep(0.05)  # the worker now waits inside offer(b"first")
    for n in range(500):
        receiver.target(str(n).encode(), "mqtt")
    recorder.gate.set()
    _wait(receiver.idle)
    assert recorder.offered == [b"first", b"499"]


def test_every_command_gets_a_result_even_when_the_queue_is_full(recorder: Recorder) -> None:
    box = Receiver(recorder.offer, recorder.command, max_commands=2)  # not started: nothing drains
    results: list[CommandResult] = []
    for _ in range(5):
        box.command("reconcile", b"{}", results.append)
    assert [r.ok for r in results] == [False, False, False]
    assert "dropped" in (results[0].error or "")
    box.start()
    _wait(lambda: len(results) == 5)
    box.stop()
    assert [r.ok for r in results[3:]] == [True, True]


def test_a_target_not_stored_is_offered_again_until_it_is_stored() -> None:
    recorder = Recorder(codes=[500, 500, 500, 200])
    box = Receiver(recorder.offer, recorder.command, retry_initial=0.01, retry_max=0.05)
    box.start()
    box.target(b"7", "mqtt")
    _wait(lambda: len(recorder.offered) == 4 and box.idle())
    time.sleep(0.1)
    box.stop()
    assert recorder.offered == [b"7"] * 4  # and no more once stored


def test_a_newer_target_replaces_one_being_retried() -> None:
    recorder = Recorder(codes=[500])
    box = Receiver(recorder.offer, recorder.command, retry_initial=30, retry_max=30)
    box.start()
    box.target(b"old", "mqtt")
    _wait(lambda: recorder.offered == [b"old"])
    box.target(b"new", "mqtt")
    _wait(box.idle)
    box.stop()
    assert recorder.offered == [b"old", b"new"]
