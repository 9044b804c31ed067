"""The pass asks the engine nothing but its list: a hung inspect or describe waits alone.

Why a container exited, whether an image is on the device and the engine's version for the
device info are asked in the background; while such a call hangs for one service, another
service is still added, created and reported running. And an image pruned while the agent took
it as present costs its service nothing: it is pulled again at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import msgspec

from fleet_agent.config import Settings
from fleet_agent.integrations import DeviceInfo
from fleet_agent.mqtt import MqttLink
from fleet_agent.workers import ThreadPerJob

from .factories import DEVICE
from .fake_engine import FakeEngine
from .scenario import Scenario

IMG = "reg.local/app:1"
IMG2 = "reg.local/app:2"


def run_until(s: Scenario, condition: Callable[[], bool]) -> None:
    """Run passes (as the kicks of background answers would) until `condition` holds."""
    for _ in range(500):
        s.run()
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition never held")


def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("condition never held")


def running(s: Scenario, name: str) -> Callable[[], bool]:
    return lambda: any(
        st.service_name == name and st.service_status == "running" for st in s.report.services
    )


def test_a_hung_read_of_why_one_container_exited_holds_up_no_other_service(
    tmp_path: Path,
) -> None:
    s = Scenario(tmp_path, FakeEngine({IMG}), lookup_workers=ThreadPerJob("lookup"))
    s.want(("a", IMG, "always"))
    s.settle()
    crashed = s.engine.exit("a", 1)
    s.engine.hung_inspects[crashed.id] = threading.Event()
    s.run()  # the exit is seen; why it exited is read in the background, which hangs
    wait_until(lambda: crashed.id in s.engine.hanging)

    s.want(("a", IMG, "always"), ("b", IMG, "always"), version=2)
    run_until(s, running(s, "b"))

    assert s.status("b").service_status == "running"
    assert crashed.id in s.engine.hanging  # still hung: nothing waited for it
    assert s.report.provisional  # a's exit is not told yet
    assert s.status("a").error is None and s.engine.of("a").state == "exited"
    s.engine.hung_inspects[crashed.id].set()
    run_until(s, lambda: s.status("a").error is not None)
    error = s.status("a").error
    assert error is not None and (error.type, error.retry_count) == ("CrashLoopBackOff", 1)
    assert "boom" in error.message  # the log tail the answer brought
    assert not s.report.provisional
    s.reconciler.close()


def test_a_hung_inspect_of_one_services_image_holds_up_no_other_service(tmp_path: Path) -> None:
    s = Scenario(tmp_path, FakeEngine({IMG, IMG2}), lookup_workers=ThreadPerJob("lookup"))
    s.engine.hung_inspects[IMG2] = threading.Event()
    s.want(("a", IMG2, "always"))
    s.run()  # whether IMG2 is here is asked in the background, which hangs
    wait_until(lambda: IMG2 in s.engine.hanging)

    s.want(("a", IMG2, "always"), ("b", IMG, "always"), version=2)
    run_until(s, running(s, "b"))

    assert IMG2 in s.engine.hanging
    assert s.status("a").service_status == "pending"  # waits for the answer: no pull meanwhile
    assert s.engine.pulls == []
    s.engine.hung_inspects[IMG2].set()
    run_until(s, running(s, "a"))
    assert s.engine.pulls == []  # it was on the device: created without a pull
    s.reconciler.close()


class Link:
    base = f"fleet/{DEVICE}"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    def retain(self, topic: str, payload: bytes) -> None:
        self.sent.append(payload)


def test_a_hung_describe_for_the_device_info_holds_up_no_pass(tmp_path: Path) -> None:
    s = Scenario(tmp_path, FakeEngine({IMG}))
    release, asked = threading.Event(), threading.Event()

    def describe() -> dict[str, str]:
        asked.set()
        release.wait(5)
        return {"version": "20.10", "os": "linux", "arch": "x86_64"}

    link = Link()
    info = DeviceInfo(Settings(device_id=DEVICE), describe, cast(MqttLink, link), 0.0)
    s.reconciler.publishers.append(info)
    s.want(("a", IMG, "always"))
    s.run()  # its publication asks the engine, which hangs
    assert asked.wait(5)

    s.settle()

    assert s.status("a").service_status == "running"
    assert not release.is_set() and link.sent == []  # still hung: the passes did not wait
    release.set()
    wait_until(lambda: bool(link.sent))
    assert msgspec.json.decode(link.sent[-1])["engine"]["version"] == "20.10"
    info.close()


def test_an_image_pruned_while_known_is_pulled_again_at_once_and_counts_nothing(
    tmp_path: Path,
) -> None:
    s = Scenario(tmp_path, FakeEngine({IMG}))
    s.engine.registry |= {IMG, IMG2}
    s.want(("app", IMG, "always"))
    s.settle()
    s.want(("app", IMG2, "always"), version=2)  # IMG's container goes; IMG stays known
    s.settle()
    s.engine.images.discard(IMG)  # `docker image prune -a`

    s.want(("app", IMG, "always"), version=3)
    s.settle()

    assert s.status("app").service_status == "running"
    assert s.status("app").error is None
    assert s.engine.pulls == [IMG2, IMG]  # pulled again right after the create found it gone
    assert all(r.alerts == {} for r in s.recorder.reports)
    assert s.changes() == []
    assert all(st.error is None for r in s.recorder.reports for st in r.services)


def test_a_retry_after_a_failed_pull_pulls_at_once_without_asking_about_the_image(
    tmp_path: Path,
) -> None:
    missing = "reg.local/app:nope"
    s = Scenario(tmp_path, FakeEngine())
    s.want(("app", missing, "always"))
    s.settle()
    error = s.status("app").error
    assert error is not None and error.type == "ImagePullBackOff"
    s.engine.calls.clear()

    s.clock.advance(s.wakes[-1] - s.clock.mono)  # the retry is due
    s.run()

    assert ("pull", missing) in s.engine.calls
    assert ("inspect", missing) not in s.engine.calls  # the pull looks itself
