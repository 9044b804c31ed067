"""`fleet-agent dashboard --db` in a real headless Chromium, on a database a real recorder filled
from the broker: the alerts panel lists the fleet's past alerts, more than 20 of them a page at
a time, after a restart of the dashboard too, filtered by the page's filter; a database that
goes down is said in the panel and the drawer, and the page keeps working."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from fleet_agent.operator.connection import Connection
from fleet_agent.operator.recorder import store
from fleet_agent.operator.recorder.schema import alerts
from fleet_agent.operator.recorder.service import Options, Recorder
from tests.integration.brokers import PrivateMosquitto
from tests.integration.dashboard.kit import (
    DashboardProcess,
    Publisher,
    alert,
    pull_error,
    service_status,
    stamp,
)
from tests.integration.helpers import wait_for
from tests.integration.postgres import PrivatePostgres
from tests.integration.recorders import new_database

PAST = 25  # more than the 20 the page shows at first


def _cleared(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(alerts).where(alerts.c.cleared_at.is_not(None))
        return int(conn.execute(query).scalar_one())


def _raise(device: str, n: int) -> list[tuple[str, Any]]:
    base = f"fleet/{device}"
    doc = alert(device, "web", "manifest unknown") | {"raisedAt": stamp(-3600 + 60 * n)}
    return [
        (f"{base}/availability", "online"),
        (f"{base}/services/web", service_status(device, "web", pull_error("manifest unknown"))),
        (f"{base}/alerts/web", doc),
    ]


def _clear(device: str) -> list[tuple[str, Any]]:
    base = f"fleet/{device}"
    return [(f"{base}/services/web", service_status(device, "web")), (f"{base}/alerts/web", "")]


@pytest.fixture
def recorder(broker: PrivateMosquitto, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A real recorder on the dashboard's broker, writing to a fresh SQLite file."""
    url = new_database("sqlite", tmp_path, None)
    engine = store.open_engine(url)
    running = Recorder(engine, Connection(mqtt_url=broker.url), Options(flush_interval=0.2))
    running.start()
    yield url, engine
    running.stop()
    engine.dispose()


def test_past_alerts_from_the_recorder_survive_a_restart_and_page_past_twenty(
    dashboard: Callable[..., DashboardProcess],
    publisher: Publisher,
    recorder: tuple[str, Engine],
    page: Page,
) -> None:
    url, engine = recorder
    devices = [f"sim-{n:03d}" for n in range(PAST)]
    publisher.send(
        [m for n, d in enumerate(devices) for m in _raise(d, n)] + _raise("sim-live", 99)
    )
    publisher.send([m for d in devices for m in _clear(d)])
    wait_for(lambda: _cleared(engine) == PAST, 60, 0.2, "the recorder closed every alert")
    board = dashboard("--db", url)
    page.goto(board.url)
    expect(page.locator("#alerts li.alert")).to_have_count(1)  # the active one, as before
    expect(page.locator("#alerts li.alert b")).to_have_text("sim-live")
    past = page.locator("#past-alerts li.past")
    expect(past).to_have_count(20)
    expect(past.first.locator("b")).to_have_text("sim-024")  # newest raised first
    expect(past.first).to_contain_text("ImagePullBackOff")
    # raised 36 min before the clear (the recorder's clock when it saw the alert go)
    expect(past.first.locator(".duration")).to_have_text(re.compile(r"^36 min \d+ s$"))
    page.locator("#past-more").click()
    expect(past).to_have_count(PAST)
    expect(past.last.locator("b")).to_have_text("sim-000")
    expect(page.locator("#past-more")).to_be_hidden()
    past.nth(3).click()  # a past alert opens its service's drawer
    expect(page.locator("#drawer h2")).to_have_text("sim-021 / web")
    expect(page.locator("#drawer")).to_contain_text("Past alerts")
    page.keyboard.press("Escape")

    board.stop()
    board = dashboard("--db", url)  # a new dashboard process: nothing kept in its memory
    page.goto(board.url)
    expect(past).to_have_count(20)
    page.locator("#past-more").click()
    expect(past).to_have_count(PAST)
    page.locator("#filter").fill("sim-007")
    expect(past).to_have_count(1)
    expect(past.locator("b")).to_have_text("sim-007")
    page.locator("#filter").fill("")
    expect(past).to_have_count(20)


def test_without_db_the_alerts_panel_shows_only_active_alerts(
    dashboard: Callable[..., DashboardProcess], publisher: Publisher, page: Page
) -> None:
    publisher.send(_raise("sim-live", 0))
    page.goto(dashboard().url)
    expect(page.locator("#alerts li.alert")).to_have_count(1)
    expect(page.locator("#past-panel")).to_be_hidden()
    assert page.evaluate("window.fleetDashboard.pastLoads") == 0


def test_a_database_that_goes_down_is_said_in_the_panel_and_the_drawer(
    dashboard: Callable[..., DashboardProcess],
    publisher: Publisher,
    page: Page,
    tmp_path: Path,
) -> None:
    server = PrivatePostgres()
    server.start()
    try:
        url = new_database("postgresql", tmp_path, server)
        store.open_engine(url).dispose()  # the schema, as a recorder would have made it
        publisher.send(_raise("sim-live", 0))
        board = dashboard("--db", url)
        page.goto(board.url)
        expect(page.locator("#past-alerts li.none")).to_have_text("none recorded")
    finally:
        server.stop()
    page.locator("#filter").fill("sim")  # asks the database again
    error = page.locator("#past-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("the recorder's database cannot be read")
    page.locator('article[data-id="sim-live"] button[data-open=web]').click()
    expect(page.locator("#drawer .recorder-error")).to_contain_text("cannot be read")
    expect(page.locator("#drawer .timeline").first).to_be_visible()  # the retained history
    expect(page.locator("#alerts li.alert")).to_have_count(1)  # the live part goes on
    assert board.proc is not None and board.proc.poll() is None
