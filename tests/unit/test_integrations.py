"""The integration publishers' decisions: when Home Assistant is told, when the summary runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec
from apscheduler.schedulers.background import BackgroundScheduler
from msgspec.structs import replace

from fleet_agent.config import Settings
from fleet_agent.hass import announced_services
from fleet_agent.integrations import DeviceInfo, HomeAssistant, Integrations, SummaryKeeper
from fleet_agent.mqtt import MqttLink
from fleet_agent.ports import EngineError
from tests.unit.factories import DEVICE, T0, report, status, status_error
from tests.unit.scenario import Inline

CONFIG = f"homeassistant/device/fleet-agent-{DEVICE}/config"


class FakeLink:
    """What the publishers use of MqttLink: retained sends and extra subscriptions."""

    base = f"fleet/{DEVICE}"

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.listeners: dict[str, Callable[[bytes], None]] = {}

    def topic(self, suffix: str) -> str:
        return f"{self.base}/{suffix}"

    def retain(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))

    def listen(self, topic: str, handler: Callable[[bytes], None]) -> None:
        self.listeners[topic] = handler

    def configs(self) -> list[dict[str, Any]]:
        return [msgspec.json.decode(p) for t, p in self.sent if t == CONFIG]


def hass(link: FakeLink) -> HomeAssistant:
    settings = Settings(device_id=DEVICE, ha_discovery=True)
    publisher = HomeAssistant(settings, cast(MqttLink, link))
    publisher.start()
    return publisher


def test_the_config_is_sent_when_the_set_of_services_changes_not_on_every_pass() -> None:
    link = FakeLink()
    publisher = hass(link)
    publisher.publish(report(status("a"), status("b")))
    publisher.publish(report(status("a", "error"), status("b")))
    assert len(link.configs()) == 1
    publisher.publish(report(status("a")))
    last = link.configs()[-1]["cmps"]
    assert len(link.configs()) == 2 and last["b_status"] == {"p": "sensor"}


def test_home_assistant_coming_online_gets_the_config_again() -> None:
    link = FakeLink()
    publisher = hass(link)
    link.listeners["homeassistant/status"](b"online")  # before any report: nothing to say
    assert link.configs() == []
    publisher.publish(report(status("a")))
    link.listeners["homeassistant/status"](b"offline")
    link.listeners["homeassistant/status"](b"online")
    assert len(link.configs()) == 2 and link.configs()[0] == link.configs()[1]


def test_services_announced_by_an_earlier_run_and_gone_since_are_removed() -> None:
    link = FakeLink()
    publisher = hass(link)
    earlier = b'{"cmps": {"old_status": {"p": "sensor", "stat_t": "x"}, "a_status": {"p": "s"}}}'
    link.listeners[CONFIG](earlier)  # the retained config, before the first report
    publisher.publish(report(status("a")))
    cmps = link.configs()[-1]["cmps"]
    assert cmps["old_status"] == {"p": "sensor"} and "stat_t" in cmps["a_status"]
    link.listeners[CONFIG](link.sent[-1][1])  # our own config echoed back: nothing new
    assert len(link.configs()) == 1


def test_announced_services_reads_only_a_device_config() -> None:
    assert announced_services(b'{"cmps": {"x_status": {"stat_t": "t"}}}') == {"x"}
    for junk in (b"", b"not json", b"[]", b'{"cmps": []}', b'{"cmps": {"x_status": 1}}'):
        assert announced_services(junk) == set()


def test_the_summary_runs_daily_at_the_configured_local_time(tmp_path: Path) -> None:
    settings = Settings(device_id=DEVICE, state_dir=str(tmp_path), summary_at="06:30")
    scheduler = BackgroundScheduler(timezone=dt.UTC)
    Integrations(settings, dict, None, lambda: 0.0).start(scheduler)
    trigger = scheduler.get_job("daily-summary").trigger
    fields = {f.name: str(f) for f in trigger.fields}
    assert (fields["hour"], fields["minute"]) == ("6", "30")
    start = dt.datetime(2026, 3, 1, 7, 0, tzinfo=dt.UTC)
    due = trigger.get_next_fire_time(None, start).astimezone()  # in the device's own zone
    assert (due.hour, due.minute) == (6, 30) and due > start


def test_a_compressed_schedule_runs_the_summary_every_n_seconds(tmp_path: Path) -> None:
    settings = Settings(device_id=DEVICE, state_dir=str(tmp_path), summary_every=2.5)
    scheduler = BackgroundScheduler(timezone=dt.UTC)
    Integrations(settings, dict, None, lambda: 0.0).start(scheduler)
    trigger = scheduler.get_job("daily-summary").trigger
    assert trigger.interval == dt.timedelta(seconds=2.5)


def test_device_info_learns_the_engine_once_it_answers_and_again_after_an_outage() -> None:
    link = FakeLink()
    calls: list[int] = []

    def describe() -> dict[str, str]:
        calls.append(1)
        if len(calls) == 1:
            raise EngineError("unavailable", "engine unreachable")
        return {"version": "20.10", "os": "linux", "arch": "x86_64"}

    info = DeviceInfo(Settings(device_id=DEVICE, labels={"site": "b"}), describe,
                      cast(MqttLink, link), 0.0, Inline())  # fmt: skip
    info.announce()
    down = replace(report(status()), engine_error="engine unreachable")
    info.publish(down)
    assert calls == []  # not asked while the passes say it is down
    info.publish(report(status()))  # it answers the pass but not describe: tried again later
    info._tried_at -= 60  # (30 s later)
    info.publish(report(status()))
    docs = [msgspec.json.decode(p) for t, p in link.sent if t == link.topic("info")]
    assert docs[0]["engine"] is None and docs[0]["labels"] == {"site": "b"}
    assert docs[-1]["engine"] == {"version": "20.10", "os": "linux", "arch": "x86_64"}
    info.publish(report(status()))
    assert len(calls) == 2  # known: not asked on every pass
    info.publish(down)
    info.publish(report(status()))  # back after an outage: maybe a new engine
    assert len(calls) == 3


def test_summary_counts_are_kept_in_the_state_dir_and_a_broken_file_starts_over(
    tmp_path: Path,
) -> None:
    settings = Settings(device_id=DEVICE, state_dir=str(tmp_path))
    failing = status("bad", "error", status_error(retry_count=2))
    keeper = SummaryKeeper(settings, lambda: T0)
    keeper.publish(report(failing))
    again = SummaryKeeper(settings, lambda: T0 + 60)
    got: list[Any] = []
    again.outputs.append(got.append)
    again.run()
    assert got[0].services["bad"].errors == {"ImagePullBackOff": 2}
    (tmp_path / "summary.json").write_bytes(b"{not json")
    fresh = SummaryKeeper(settings, lambda: T0)
    assert fresh.ledger.services == {}
