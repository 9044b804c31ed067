"""The recorder against a real agent, engine, registry and Mosquitto, writing to a real SQLite
file and a real PostgreSQL server: the seed scenario, concurrent and restarted recorders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.fleet import Change
from fleet_agent.operator.recorder.rows import moment
from fleet_agent.operator.recorder.service import Options, Recorder
from tests.integration.brokers import PrivateMosquitto
from tests.integration.conftest import Services
from tests.integration.helpers import AgentProcess, service, target, wait_for
from tests.integration.recorders import RecorderProcess, rows

SLEEP = ["sh", "-c", "exec sleep 3600"]


def _history_keys(seen: list[Change], device_id: str) -> set[tuple[Any, ...]]:
    """Every transition the agent published in its history topics, as the recorder keys it."""
    keys = set()
    for change in seen:
        if change.kind == "history" and change.device_id == device_id and change.device:
            for entry in change.device.history.get(change.service or "", []):
                at = moment(entry.timestamp)
                keys.add((change.service, at, entry.service_status, entry.error_type or ""))
    return keys


def _transition_keys(engine: Engine, device_id: str) -> list[tuple[Any, ...]]:
    found = rows(engine, "transitions", device_id=device_id)
    return [(r["service"], r["at"], r["status"], r["error_type"]) for r in found]


def _alert(engine: Engine, device_id: str, severity: str) -> dict[str, Any] | None:
    found = rows(engine, "alerts", device_id=device_id, service="bad")
    return found[0] if found and found[0]["severity"] == severity else None


def test_the_seed_scenario_is_recorded_whole_by_two_recorders_and_one_restarted(
    make_db: Any,
    agent: AgentProcess,
    broker: PrivateMosquitto,
    services: Services,
    device_id: str,
    tmp_path: Path,
) -> None:
    shared_url, shared = make_db()  # recorders A (in this process) and B (a child) at once
    alone_url, alone = make_db()  # recorder C alone, SIGKILLed mid-scenario and restarted
    conn = Connection(mqtt_url=broker.url)
    a = Recorder(shared, conn, Options(flush_interval=0.2))
    b = RecorderProcess(tmp_path, shared_url, broker.url, "b")
    c = RecorderProcess(tmp_path, alone_url, broker.url, "c")
    seen: list[Change] = []
    client = FleetClient(conn)
    client.on_change(seen.append)
    agent.env.update(
        FLEET_AGENT_MQTT_URL=broker.url,
        FLEET_AGENT_BACKOFF_INITIAL="1",
        FLEET_AGENT_BACKOFF_MAX="2",
        FLEET_AGENT_MAX_RETRIES="3",
    )
    try:
        with client:
            a.start()
            b.start()
            c.start()
            agent.start(target_file=False)
            good = service("good", services.image1, 1, SLEEP)
            bad = service("bad", services.missing_image, 2)
            assert client.apply(device_id, target(None, good, bad), timeout=60).accepted

            # in error: device_state.service_errors names the bad service, the alert is raised
            def bad_in_error(engine: Engine) -> dict[str, Any] | None:
                state = rows(engine, "device_state", device_id=device_id)
                errors = state[0]["service_errors"] if state else {}
                return errors if "bad" in errors else None

            errors = wait_for(lambda: bad_in_error(shared), 90, 0.3, "bad in service_errors")
            assert errors["bad"]["type"] in ("ImagePullBackOff", "ErrImagePull")
            assert "manifest" in errors["bad"]["message"] and errors["bad"]["retryCount"] >= 1
            wait_for(lambda: _alert(alone, device_id, "critical"), 90, 0.3, "escalated in C")
            c.kill()  # mid-scenario, without a goodbye

            fixed = service("bad", services.image2, 2, SLEEP)
            assert client.apply(device_id, target(None, good, fixed), timeout=60).accepted
            client.wait_until(
                lambda d: (
                    d[device_id].state is not None
                    and d[device_id].state.converged  # type: ignore[union-attr]
                    and not d[device_id].alerts
                ),
                timeout=90,
            )
            c.start()  # reads the retained topics again: history fills its gap
            client.wait_until(lambda d: d[device_id].history["bad"][-1].service_status == "running")
            wait_for(lambda: rows(shared, "alerts", device_id=device_id)[0]["cleared_at"], 30)

            def caught_up(engine: Engine) -> bool:
                return set(_transition_keys(engine, device_id)) == _history_keys(seen, device_id)

            wait_for(lambda: caught_up(shared) and caught_up(alone), 60, 0.3, "transitions")
            expected = _history_keys(seen, device_id)
    finally:
        a.stop()
        b_code, c_code = b.stop(), c.stop()
    assert (b_code, c_code) == (0, 0), b.log_tail() + c.log_tail()

    for engine in (shared, alone):
        _assert_recorded(engine, device_id, expected)


def _assert_recorded(engine: Engine, device_id: str, expected: set[tuple[Any, ...]]) -> None:
    keys = _transition_keys(engine, device_id)
    assert len(keys) == len(set(keys))  # no duplicate
    assert set(keys) == expected  # no gap, nothing made up
    bad_path = [k for k in sorted(keys, key=lambda k: k[1]) if k[0] == "bad"]
    kinds = [k[3] for k in bad_path]
    assert "ImagePullBackOff" in kinds and bad_path[-1][2] == "running"
    assert kinds.index("ImagePullBackOff") < len(kinds) - 1
    assert rows(engine, "device_state", device_id=device_id)[0]["service_errors"] == {}
    statuses = {r["service"]: r for r in rows(engine, "service_status", device_id=device_id)}
    assert statuses["bad"]["status"] == "running" and statuses["bad"]["error_type"] is None

    (alert,) = rows(engine, "alerts", device_id=device_id)
    assert alert["service"] == "bad" and alert["first_type"] == "ImagePullBackOff"
    assert (alert["severity"], alert["type"]) == ("critical", "MaxRetriesExceeded")
    assert alert["escalated_at"] > alert["raised_at"] and alert["seconds_to_escalate"] > 0
    assert alert["cleared_at"] >= alert["escalated_at"]
    assert alert["duration_seconds"] >= alert["seconds_to_escalate"]

    found = sorted(rows(engine, "acks", device_id=device_id), key=lambda r: r["received_at"])
    assert [(r["version"], r["code"], r["accepted"]) for r in found] == [
        (1, 200, True),
        (2, 200, True),
    ]
