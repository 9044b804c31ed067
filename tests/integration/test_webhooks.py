"""Webhooks against a real HTTP receiver on loopback, with the real engine and registry: the
seed scenario's alerts arrive raised, escalated and cleared, signed; a receiver that hangs
delays no pass, and gets the latest state of every alert once it answers again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, service, target, wait_for
from tests.integration.receivers import WebhookReceiver

SLEEP = ["sh", "-c", "exec sleep 3600"]
SECRET = "s3cret-for-tests"


@pytest.fixture
def receivers() -> Iterator[list[WebhookReceiver]]:
    made = [WebhookReceiver(), WebhookReceiver()]
    yield made
    for receiver in made:
        receiver.close()


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _compressed(agent: AgentProcess, urls: list[str]) -> None:
    agent.env.update(
        FLEET_AGENT_WEBHOOK_URL=" , ".join(urls),
        FLEET_AGENT_WEBHOOK_SECRET=SECRET,
        FLEET_AGENT_WEBHOOK_TIMEOUT="1",
        FLEET_AGENT_WEBHOOK_RETRY_INITIAL="0.2",
        FLEET_AGENT_WEBHOOK_RETRY_MAX="0.5",
        FLEET_AGENT_BACKOFF_INITIAL="0.5",
        FLEET_AGENT_BACKOFF_MAX="1",
        FLEET_AGENT_MAX_RETRIES="3",
    )


def test_every_receiver_gets_raised_escalated_and_cleared_for_the_seed_scenario_signed(
    agent: AgentProcess, services: Services, receivers: list[WebhookReceiver], device_id: str
) -> None:
    _compressed(agent, [r.url for r in receivers])
    good = service("good", services.image1, 1, SLEEP)
    agent.set_target(target(1, good, service("bad", services.missing_image, 2)))
    agent.start()
    first = receivers[0]
    wait_for(lambda: len(first.alerts("bad")) >= 2, timeout=60, what="raised and escalated")
    agent.set_target(target(2, good, service("bad", services.image2, 2, SLEEP)))
    for receiver in receivers:
        wait_for(
            lambda r=receiver: [a["event"] for a in r.alerts("bad")][-1:] == ["cleared"],  # type: ignore[misc]
            timeout=60,
            what="cleared",
        )
        raised, escalated, cleared = receiver.alerts("bad")
        assert raised["event"] == "raised" and raised["severity"] == "warning"
        assert raised["type"] == "ImagePullBackOff" and "manifest unknown" in raised["message"]
        assert raised["deviceId"] == device_id and raised["retryCount"] == 1
        assert escalated["event"] == "escalated" and escalated["severity"] == "critical"
        assert escalated["type"] == "MaxRetriesExceeded" and escalated["retryCount"] == 3
        assert escalated["raisedAt"] == raised["raisedAt"]
        assert cleared["type"] == "MaxRetriesExceeded" and cleared["raisedAt"] == raised["raisedAt"]
        assert _ts(cleared["updatedAt"]) >= _ts(escalated["updatedAt"])
        assert receiver.alerts("good") == []  # a healthy service raises nothing
        assert receiver.signatures_valid(SECRET)
        assert not receiver.signatures_valid("another secret")
        headers = receiver.requests[0][0]
        assert headers["Content-Type"] == "application/json"
    assert SECRET not in agent.log_path.read_text()


def _attempts_on_schedule(agent: AgentProcess, name: str, upto: int) -> dict[int, dict[str, Any]]:
    attempts: dict[int, dict[str, Any]] = {}

    def reached() -> bool:
        status = agent.service(name)
        if status and status["error"]:
            attempts.setdefault(status["error"]["retryCount"], status["error"])
        return upto in attempts

    wait_for(reached, timeout=60, interval=0.05, what=f"{upto} failed pulls of {name}")
    return attempts


def test_a_hanging_receiver_delays_no_pass_and_gets_the_latest_state_of_each_alert_later(
    agent: AgentProcess, services: Services, receivers: list[WebhookReceiver]
) -> None:
    receiver = receivers[0]
    receiver.down()
    _compressed(agent, [receiver.url])
    good = service("good", services.image1, 1, SLEEP)
    bad = service("bad", services.missing_image, 2)
    worse = service("worse", f"{services.registry}/fleet-test/other:nope", 3)
    agent.set_target(target(1, good, bad, worse))
    agent.start()
    # Retries keep their schedule while every webhook request hangs until its timeout.
    attempts = _attempts_on_schedule(agent, "bad", 3)
    assert {1, 2, 3} <= attempts.keys()
    for count in (1, 2):
        due, retried_at = _ts(attempts[count]["nextRetry"]), _ts(attempts[count + 1]["timestamp"])
        assert due <= retried_at < due + 5  # woken at its deadline, not by the periodic pass
    agent.wait_service("good", lambda s: s["serviceStatus"] == "running", timeout=60)
    # `bad` is fixed while the receiver is still down: its alert is raised, escalated, cleared.
    agent.set_target(target(2, good, service("bad", services.image2, 2, SLEEP), worse))
    agent.wait_service("bad", lambda s: s["serviceStatus"] == "running", timeout=60)
    agent.wait_service("worse", lambda s: s["error"] and s["error"]["exhausted"], timeout=60)
    assert receiver.bodies() == []

    receiver.up()
    wait_for(lambda: receiver.alerts("bad") and receiver.alerts("worse"), timeout=30, what="both")
    assert receiver.refused >= 1  # it was tried while down
    # A marker after the backlog: anything stale still queued would arrive before it.
    agent.set_target(target(3, good, service("bad", services.image2, 2, SLEEP)))
    wait_for(lambda: len(receiver.alerts("worse")) == 2, timeout=30, what="worse cleared")
    bad_alerts, worse_alerts = receiver.alerts("bad"), receiver.alerts("worse")
    assert [a["event"] for a in bad_alerts] == ["cleared"]  # only the latest state
    assert bad_alerts[0]["type"] == "MaxRetriesExceeded"
    assert [a["event"] for a in worse_alerts] == ["escalated", "cleared"]
    assert worse_alerts[0]["type"] == "MaxRetriesExceeded"
    assert receiver.signatures_valid(SECRET)
