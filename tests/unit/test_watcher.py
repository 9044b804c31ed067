"""Local mode: the target file watcher answers each content of the file exactly once."""

from __future__ import annotations

from pathlib import Path

from fleet_agent.agent import TargetFileWatcher
from fleet_agent.intake import decide
from fleet_agent.model import Ack

from .factories import T0, encode, target_doc


class Offers:
    def __init__(self) -> None:
        self.acks: list[Ack] = []

    def __call__(self, payload: bytes, source: str) -> Ack:
        ack = decide(payload, None, T0).ack
        self.acks.append(ack)
        return ack


def test_a_deeply_nested_target_file_is_rejected_once_and_the_watcher_never_raises(
    tmp_path: Path,
) -> None:
    path = tmp_path / "target.json"
    path.write_bytes(b'{"apps": ' + b"[" * 1000 + b"]" * 1000 + b"}")
    offers = Offers()
    watcher = TargetFileWatcher(path, offers)

    for _ in range(5):  # the agent checks once a second
        watcher.check()

    assert [(a.code, [e.path for e in a.errors]) for a in offers.acks] == [(400, ["$"])]


def test_a_new_content_after_a_rejected_one_is_offered_again(tmp_path: Path) -> None:
    path = tmp_path / "target.json"
    path.write_bytes(b'{"apps": {"1": {"appId": 1}, "1": {"appId": 1}}}')
    offers = Offers()
    watcher = TargetFileWatcher(path, offers)
    watcher.check()
    watcher.check()

    path.write_bytes(encode(target_doc(3)))
    watcher.check()
    watcher.check()

    assert [a.code for a in offers.acks] == [400, 200]


def test_a_target_path_that_is_a_directory_is_reported_not_raised(tmp_path: Path) -> None:
    offers = Offers()
    watcher = TargetFileWatcher(tmp_path, offers)

    watcher.check()
    watcher.check()

    assert offers.acks == []
