"""The alerts panel's query (`queries.past_alerts_page`, dashboard --db) on a real SQLite file
and a real PostgreSQL server: the same pages, cursors and filter words on both."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fleet_agent.operator.recorder import queries, store
from fleet_agent.operator.recorder.rows import Batch
from tests.unit.test_dashboard_recorded import T, _alert, fleet_alerts


def _devices(page: list[dict[str, Any]]) -> list[str]:
    return [a["device"] for a in page]


def test_past_alerts_page_the_same_on_sqlite_and_postgresql(make_db: Any) -> None:
    _, engine = make_db()
    store.write(engine, fleet_alerts(25))
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page, cursor = queries.past_alerts_page(engine, 10, cursor)
        seen += _devices(page)
        if cursor is None:
            break
    assert seen == [f"dev-{n:03d}" for n in range(24, -1, -1)]  # 10 + 10 + 5, none twice
    page, more = queries.past_alerts_page(engine, 50, None, "Critical DEV-01")
    assert _devices(page) == ["dev-015", "dev-010"] and more is None
    assert page[0]["durationSeconds"] == 600.0 and page[0]["secondsToEscalate"] == 120.0
    assert page[0]["clearedAt"] == "2025-10-24T10:25:00.000Z"
    assert queries.past_alerts_page(engine, 50, None, "dev_0")[0] == []


def test_alerts_raised_at_the_same_moment_are_each_paged_once(make_db: Any) -> None:
    _, engine = make_db()
    batch = Batch()
    for device in ("dev-a", "dev-b", "dev-c"):
        batch.alerts.append(("upsert", _alert(device, T)))
        batch.alerts.append(("clear", {"device_id": device, "service": "web", "at": T}))
    store.write(engine, batch)
    first, cursor = queries.past_alerts_page(engine, 2)
    rest, end = queries.past_alerts_page(engine, 2, cursor)
    assert sorted(_devices(first) + _devices(rest)) == ["dev-a", "dev-b", "dev-c"]
    assert len(first) == 2 and end is None
    assert first[0]["durationSeconds"] == 0.0 and first[0]["clearedAt"] == first[0]["raisedAt"]
    assert dt.datetime.fromisoformat(cursor.split("~")[0]) == T  # type: ignore[union-attr]
