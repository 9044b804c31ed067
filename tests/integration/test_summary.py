"""The daily summary over a compressed day, against the real engine, registry and broker: the
counts of a crash-looping and a failing service, on MQTT and to the webhook, across a restart."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, service, target, wait_for
from tests.integration.mqtt_probe import MqttProbe
from tests.integration.receivers import WebhookReceiver

SLEEP = ["sh", "-c", "exec sleep 3600"]


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    made = WebhookReceiver()
    yield made
    made.close()


def _summary_after(
    probe: MqttProbe, moment: float, seen: Any = lambda rows: True
) -> dict[str, Any]:
    """The first summary made after `moment` whose rows show what `seen` waits for (the pass
    that reported it may still be handing its report to the other publishers)."""
    doc: dict[str, Any] = probe.wait_json(
        "summary", lambda d: _ts(d["to"]) > moment and seen(d["services"]), timeout=60
    )
    return doc


def test_summary_of_a_compressed_day_counts_crashes_and_failures_and_survives_a_restart(
    agent: AgentProcess,
    broker: PrivateMosquitto,
    probe: MqttProbe,
    services: Services,
    receiver: WebhookReceiver,
    device_id: str,
) -> None:
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_SUMMARY_EVERY="1",  # the compressed day: a summary every second
        FLEET_AGENT_SUMMARY_WINDOW="900",  # over the last 15 minutes
        FLEET_AGENT_WEBHOOK_URL=receiver.url,
        FLEET_AGENT_BACKOFF_INITIAL="0.3",
        FLEET_AGENT_BACKOFF_MAX="0.6",
        FLEET_AGENT_MAX_RETRIES="3",
    )
    good = service("good", services.image1, 1, SLEEP)
    crashy = service("crashy", services.image1, 2, ["sh", "-c", "sleep 0.2; exit 3"])
    crashy["config"]["restart"] = "always"
    bad = service("bad", services.missing_image, 3)
    agent.set_target(target(1, good, crashy, bad))
    agent.start()

    done = {n: agent.wait_service(n, lambda s: s["error"] and s["error"]["exhausted"], timeout=90)
            for n in ("crashy", "bad")}  # fmt: skip
    settled = time.time()
    summary = _summary_after(
        probe, settled, lambda r: "ErrImagePull" in r.get("bad", {}).get("errors", {})
    )
    assert summary["deviceId"] == device_id
    assert _ts(summary["to"]) - _ts(summary["from"]) == pytest.approx(900, abs=0.01)
    rows = summary["services"]
    assert rows["good"] == {
        "status": "running", "errors": {}, "restarts": 0, "secondsInError": 0,
        "worstSeverity": None,
    }  # fmt: skip
    assert rows["bad"]["errors"] == {"ImagePullBackOff": 2, "ErrImagePull": 1}
    assert rows["bad"]["restarts"] == 0 and rows["bad"]["worstSeverity"] == "critical"
    assert rows["bad"]["status"] == "error"
    # in error since the pass that first saw it: the alert's raisedAt (the first status in
    # error can be one this probe never got, held back and replaced while steps ran)
    raised = probe.json("alerts/bad")["raisedAt"]
    in_error = _ts(summary["to"]) - _ts(raised)
    assert abs(rows["bad"]["secondsInError"] - in_error) <= 2
    crash = done["crashy"]
    assert (
        rows["crashy"]["errors"]
        == {"CrashLoopBackOff": crash["error"]["retryCount"]}
        == {"CrashLoopBackOff": 3}
    )
    assert rows["crashy"]["restarts"] == crash["restartCount"] >= 2
    assert rows["crashy"]["worstSeverity"] == "critical"
    # the same summary goes to the webhook
    posted = wait_for(lambda: receiver.bodies("summary"), what="summary posted")
    assert posted[-1]["deviceId"] == device_id and "bad" in posted[-1]["services"]

    # The two leave the target; their counts stay in the summary, and survive a restart.
    agent.set_target(target(2, good))
    wait_for(lambda: agent.service("bad") is None and agent.service("crashy") is None, timeout=60)
    left = time.time()  # the pass that removed them has been reported
    gone = ("bad", "crashy")
    before = _summary_after(
        probe, left, lambda r: all(r.get(n, {}).get("status") == "removed" for n in gone)
    )["services"]
    assert before["bad"]["status"] == before["crashy"]["status"] == "removed"
    assert agent.stop() == 0
    restarted = time.time()
    agent.start()
    after = _summary_after(probe, restarted)["services"]  # made by the new process
    for name in ("bad", "crashy"):
        assert after[name] == before[name]
    assert after["crashy"]["errors"] == {"CrashLoopBackOff": 3}
    assert after["bad"]["errors"] == {"ImagePullBackOff": 2, "ErrImagePull": 1}
    assert after["good"]["status"] == "running"
