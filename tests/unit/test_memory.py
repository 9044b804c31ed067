"""What survives an agent restart: written atomically, only on change, read back at start."""

from __future__ import annotations

from pathlib import Path

from fleet_agent.backoff import BackoffPolicy
from fleet_agent.feed import FeedState
from fleet_agent.memory import MEMORY_FILE, Memory

from .factories import DEVICE, desired, failed, runtime
from .fake_engine import FakeClock

SVC = desired("app")


def test_what_was_saved_is_loaded_back_in_the_same_boot(tmp_path: Path) -> None:
    clock = FakeClock()
    runtimes = {"app": runtime(SVC, crash=failed([clock.mono]), restart_count=4)}
    Memory(tmp_path, clock, boot="b1").save(runtimes, FeedState(device_id=DEVICE))
    clock.advance(30)

    loaded, feed = Memory(tmp_path, clock, boot="b1").load(DEVICE)

    assert loaded == runtimes
    assert feed.device_id == DEVICE


def test_nothing_is_written_when_nothing_changed(tmp_path: Path) -> None:
    memory = Memory(tmp_path, FakeClock(), boot="b1")
    runtimes = {"app": runtime(SVC, restart_count=1)}
    memory.save(runtimes, FeedState(device_id=DEVICE))
    (tmp_path / MEMORY_FILE).unlink()

    memory.save(runtimes, FeedState(device_id=DEVICE))

    assert not (tmp_path / MEMORY_FILE).exists()
    memory.save({"app": runtime(SVC, restart_count=2)}, FeedState(device_id=DEVICE))
    assert (tmp_path / MEMORY_FILE).exists()


def test_a_damaged_file_or_another_devices_memory_is_ignored(tmp_path: Path) -> None:
    clock = FakeClock()
    Memory(tmp_path, clock, boot="b1").save(
        {"app": runtime(SVC, restart_count=1)}, FeedState(device_id="other-device")
    )
    assert Memory(tmp_path, clock, boot="b1").load(DEVICE)[0] == {}

    (tmp_path / MEMORY_FILE).write_bytes(b"{not json")
    assert Memory(tmp_path, clock, boot="b1").load(DEVICE)[0] == {}


def test_after_a_reboot_a_deadline_keeps_what_remained_less_the_time_that_passed(
    tmp_path: Path,
) -> None:
    clock = FakeClock(mono=500.0)
    crash = failed([500.0], policy=BackoffPolicy(initial=60))  # retry at 560
    Memory(tmp_path, clock, boot="b1").save(
        {"app": runtime(SVC, crash=crash)}, FeedState(device_id=DEVICE)
    )
    rebooted = FakeClock(mono=20.0, wall=clock.wall_time + 45)  # 45 s later, a new boot

    loaded, _ = Memory(tmp_path, rebooted, boot="b2").load(DEVICE)

    assert loaded["app"].crash.next_retry == 20.0 + 15.0
    assert loaded["app"].crash.failures == 1
