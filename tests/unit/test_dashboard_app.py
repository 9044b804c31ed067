"""The dashboard's HTTP side through Starlette's test client, over an in-memory fleet source,
and the hub's coalescing of changes."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from starlette.testclient import TestClient

from fleet_agent.operator.dashboard.app import Timing, create_app
from fleet_agent.operator.dashboard.guard import COOKIE, Guard
from fleet_agent.operator.dashboard.hub import Hub
from fleet_agent.operator.errors import WaitTimeout
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.wire import CommandResult
from tests.unit.test_dashboard_view import error, status

LOCAL = "http://127.0.0.1:8080"


class Fleet:
    """The few methods of `FleetClient` the app uses, over fixed devices; retries recorded."""

    connected = True

    def __init__(self, *devices: Device, answer: bool = True) -> None:
        self._devices = {d.device_id: d for d in devices}
        self.answer = answer
        self.retries: list[tuple[str, str | None]] = []

    def devices(self) -> dict[str, Device]:
        return dict(self._devices)

    def device(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def retry(
        self, device_id: str, service: str | None = None, timeout: float = 10.0
    ) -> CommandResult:
        self.retries.append((device_id, service))
        if not self.answer:
            raise WaitTimeout(f"no result from {device_id} within {timeout:g}s")
        return CommandResult("retry", True, "req-1", services=[service] if service else [])


def failing_device() -> Device:
    services = {"web": status(), "bad": status("bad", "error", error=error())}
    return Device("dev-001", availability="online", services=services)


def client(fleet: Fleet, token: str | None = None) -> tuple[TestClient, Guard]:
    guard = Guard(token)
    return TestClient(create_app(fleet, guard, Hub(), Timing()), base_url=LOCAL), guard


def test_the_page_carries_the_post_token_and_a_strict_content_security_policy() -> None:
    http, guard = client(Fleet())
    page = http.get("/")
    assert page.status_code == 200 and f'content="{guard.page_token}"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert http.get("/static/app.js").status_code == 200


def test_the_fleet_endpoint_lists_device_rows_and_the_drawer_one_service() -> None:
    http, _ = client(Fleet(failing_device()))
    doc = http.get("/api/fleet").json()
    assert doc["connected"] and [d["id"] for d in doc["devices"]] == ["dev-001"]
    badges = {s["name"]: s["badge"]["text"] for s in doc["devices"][0]["services"]}
    assert badges == {"bad": "ImagePullBackOff", "web": "Running"}
    detail = http.get("/api/devices/dev-001/services/bad").json()
    assert detail["error"]["retryCount"] == 3 and detail["history"] == []
    assert http.get("/api/devices/dev-001/services/nope").status_code == 404
    assert http.get("/api/devices/NOT..valid/services/x").status_code == 404


def test_force_retry_posts_carrying_the_page_token_and_return_the_command_result() -> None:
    fleet = Fleet(failing_device())
    http, guard = client(fleet)
    assert http.post("/api/devices/dev-001/retry", json={"service": "bad"}).status_code == 403
    headers = {"x-fleet-token": guard.page_token}
    answer = http.post("/api/devices/dev-001/retry", json={"service": "bad"}, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["result"] == {
        "command": "retry",
        "ok": True,
        "requestId": "req-1",
        "services": ["bad"],
    }
    assert http.post("/api/devices/dev-001/retry", content=b"", headers=headers).status_code == 200
    assert fleet.retries == [("dev-001", "bad"), ("dev-001", None)]
    assert http.get("/api/devices/dev-001/retry").status_code == 405  # state changes are POSTs


def test_bad_retry_requests_get_a_clear_error_and_send_nothing() -> None:
    fleet = Fleet(failing_device())
    http, guard = client(fleet)
    headers = {"x-fleet-token": guard.page_token}

    def post(path: str, body: bytes) -> Any:
        return http.post(path, content=body, headers=headers)

    assert post("/api/devices/dev-001/retry", b"{nope").status_code == 400
    assert post("/api/devices/dev-001/retry", b"[1]").status_code == 400
    assert post("/api/devices/dev-001/retry", b'{"service": 5}').status_code == 400
    assert post("/api/devices/dev-001/retry", b'{"service": "../x"}').status_code == 400
    assert post("/api/devices/dev-001/retry", b'{"service": "nope"}').status_code == 404
    assert post("/api/devices/dev-404/retry", b"{}").status_code == 404
    assert post("/api/devices/dev-001/retry", b" " * 5000).status_code == 413
    assert fleet.retries == []


def test_a_retry_without_an_answer_from_the_device_says_so() -> None:
    http, guard = client(Fleet(failing_device(), answer=False))
    answer = http.post(
        "/api/devices/dev-001/retry", json={}, headers={"x-fleet-token": guard.page_token}
    )
    assert answer.status_code == 504 and "no result from dev-001" in answer.json()["error"]


def test_without_a_token_a_foreign_host_name_is_refused() -> None:
    http, _ = client(Fleet())
    assert http.get("/api/fleet", headers={"host": "rebound.example"}).status_code == 403


def test_with_a_token_nothing_is_shown_before_login_and_the_login_sets_a_strict_cookie() -> None:
    http, _ = client(Fleet(failing_device()), token="s3cret-token")
    assert "<form" in http.get("/").text
    assert http.get("/api/fleet").status_code == 401
    assert http.post("/login", data={"token": "wrong"}).status_code == 401
    logged_in = http.post("/login", data={"token": "s3cret-token"}, follow_redirects=False)
    assert logged_in.status_code == 303
    cookie = logged_in.headers["set-cookie"]
    assert (
        f"{COOKIE}=s3cret-token" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    )
    http.cookies.set(COOKIE, "s3cret-token")
    assert http.get("/api/fleet").status_code == 200
    assert 'content="s3cret-token"' in http.get("/").text
    no_header = http.post("/api/devices/dev-001/retry", json={})
    assert no_header.status_code == 403  # the cookie alone never changes anything


def test_the_hub_coalesces_a_burst_of_changes_from_another_thread_into_one_set() -> None:
    async def scenario() -> set[str]:
        hub = Hub()
        hub.attach(asyncio.get_running_loop())
        subscriber = hub.subscribe()
        assert subscriber is not None

        def changes() -> None:
            for i in range(5000):
                hub.notify(f"d{i % 50}")

        burst = threading.Thread(target=changes)
        burst.start()
        burst.join()
        await asyncio.wait_for(subscriber.wake.wait(), 5)
        await asyncio.sleep(0.05)
        return subscriber.take()

    assert asyncio.run(scenario()) == {f"d{i}" for i in range(50)}


def test_the_hub_limits_open_streams_and_ends_them_on_close() -> None:
    async def scenario() -> list[Any]:
        hub = Hub(max_subscribers=2)
        hub.attach(asyncio.get_running_loop())
        first, second, third = hub.subscribe(), hub.subscribe(), hub.subscribe()
        hub.close()
        return [first is not None and first.closed, second is not None, third]

    assert asyncio.run(scenario()) == [True, True, None]
