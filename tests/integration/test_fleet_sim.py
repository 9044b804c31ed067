"""Real agents on simulated engines over a real Mosquitto: a fleet, and what one change costs.

The agents are the real thing (reconciler, backoff, wake-ups, MQTT link); only the engine is
`SimEngine`. The fleet test is a short version of `bench/fleet_scale.py`; it asserts that every
device converges, never how fast.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.fleet import Fleet, FleetWatcher, make_target, publish_targets
from tests.integration.brokers import PrivateMosquitto
from tests.integration.helpers import wait_for
from tests.integration.mqtt_probe import MqttProbe


def test_a_hundred_simulated_devices_all_converge_and_follow_a_new_version(
    broker: PrivateMosquitto, tmp_path: Path
) -> None:
    watcher = FleetWatcher(broker.url)
    try:
        with Fleet([broker.url], 100, tmp_path, sim_url="sim://?pull_delay=0.2") as fleet:
            publish_targets(broker.url, fleet.device_ids, make_target(1, services=3))
            done = watcher.wait_converged(fleet.device_ids, 1, timeout=120)
            assert done is not None, watcher.missing(fleet.device_ids, 1)[:5]
            publish_targets(broker.url, fleet.device_ids, make_target(2, services=3, change=1))
            done = watcher.wait_converged(fleet.device_ids, 2, timeout=120)
            assert done is not None, watcher.missing(fleet.device_ids, 2)[:5]
    finally:
        watcher.close()


def _holds_version(watcher: FleetWatcher, base: str, version: int, services: int) -> bool:
    seen = {
        topic
        for topic, payload in list(watcher.messages)
        if "/services/" not in topic
        or (payload and json.loads(payload)["targetVersion"] == version)
    }
    started = {
        json.loads(payload).get("service")
        for topic, payload in list(watcher.messages)
        if topic == f"{base}/events" and '"type":"start"' in payload
    }
    names = [f"s{i}" for i in range(services)]
    return all(
        f"{base}/services/{n}" in seen and f"{base}/history/{n}" in seen and n in started
        for n in names
    )


def test_a_new_version_sends_each_retained_topic_at_most_once_and_nothing_for_the_unchanged(
    broker: PrivateMosquitto, tmp_path: Path
) -> None:
    """55 services of which 5 change: one message per retained topic that changed, and no
    history or event for the 50 services that stayed as they were."""
    watcher = FleetWatcher(broker.url, keep_messages=True)
    try:
        with Fleet([broker.url], 1, tmp_path) as fleet:
            devices = fleet.device_ids
            publish_targets(broker.url, devices, make_target(1, services=55))
            assert watcher.wait_converged(devices, 1, timeout=60) is not None
            # the states come on another connection than the messages: wait until these hold
            # every status, history and start event of version 1 (a late one would count as
            # version 2's)
            base = f"fleet/{devices[0]}"
            wait_for(lambda: _holds_version(watcher, base, 1, 55), timeout=60, what="v1 seen")
            before = len(watcher.messages)
            publish_targets(broker.url, devices, make_target(2, services=55, change=5))
            assert watcher.wait_converged(devices, 2, timeout=60) is not None
            time.sleep(1.0)  # anything late would still be counted
            topics = Counter(topic for topic, _ in watcher.messages[before:])
    finally:
        watcher.close()
    retained = {t: n for t, n in topics.items() if not t.endswith(("/events", "/target"))}
    assert {t: n for t, n in retained.items() if n > 1} == {}
    changed = {f"s{i}" for i in range(5)}
    history = {t.rsplit("/", 1)[1] for t in topics if t.startswith(f"{base}/history/")}
    assert history <= changed
    events = [p for t, p in watcher.messages[before:] if t == f"{base}/events"]
    assert events and all(any(f'"service":"{s}"' in p for s in changed) for p in events)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_retained_topics_an_earlier_run_left_are_cleared_and_own_ones_stay(
    broker: PrivateMosquitto, tmp_path: Path, protocol: str
) -> None:
    """The agent looks for leftovers only in the moment after it connects (its subscription to
    its own per-service topics ends at the SUBACK): what an earlier run left is still found."""
    fleet = Fleet([broker.url], 1, tmp_path, protocol=protocol)
    device = fleet.device_ids[0]
    earlier = MqttProbe("127.0.0.1", broker.port, device, v5=False)
    try:
        for kind in ("services", "history", "alerts"):
            earlier.publish(f"{kind}/gone", b'{"left": "by an earlier run"}', retain=True)
        earlier.publish("target", make_target(1, services=1), retain=True)
        with fleet:
            earlier.wait_json("state", lambda s: s["converged"] and s["targetVersion"] == 1)
            cleared = ("services/gone", "history/gone", "alerts/gone")
            wait_for(lambda: all(earlier.raw(t) == b"" for t in cleared), timeout=30, what="clear")
            fresh = MqttProbe("127.0.0.1", broker.port, device, v5=False)
            try:
                fresh.wait_json("services/s0", lambda s: s["serviceStatus"] == "running")
                time.sleep(0.5)  # every retained message has arrived by now
                assert fresh.raw("services/gone") is None
                assert fresh.raw("history/gone") is None
            finally:
                fresh.close()
    finally:
        earlier.close()
