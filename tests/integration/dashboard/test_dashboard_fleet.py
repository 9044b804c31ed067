"""The dashboard against simulated devices (retained messages published by the test, as agents
would): payloads shown as text, reconnecting after a server restart, 1,000 devices."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.integration.dashboard.kit import (
    DashboardProcess,
    Publisher,
    alert,
    pull_error,
    service_status,
    sim_device,
)
from tests.integration.helpers import wait_for

HOSTILE = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2"><b>bold</b>'


def test_html_in_payloads_renders_as_text_in_rows_alerts_and_the_drawer(
    dashboard: Callable[..., DashboardProcess], publisher: Publisher, page: Page
) -> None:
    device = "sim-hostile"
    publisher.send(
        [
            (f"fleet/{device}/availability", "online"),
            (f"fleet/{device}/info", {"deviceId": device, "labels": {"site": HOSTILE}}),
            (f"fleet/{device}/services/app", service_status(device, "app", pull_error(HOSTILE))),
            (f"fleet/{device}/alerts/app", alert(device, "app", HOSTILE)),
            (
                f"fleet/{device}/history/app",
                [
                    {
                        "timestamp": "2026-01-01T00:00:00.000Z",
                        "serviceStatus": "error",
                        "message": HOSTILE,
                    }
                ],
            ),
        ]
    )
    page.goto(dashboard().url)
    row = page.locator(f'article[data-id="{device}"]')
    expect(row.locator('li[data-service="app"] .msg')).to_have_text(HOSTILE)
    expect(row.locator(".label")).to_have_text(f"site={HOSTILE}")
    expect(page.locator("#alerts .msg")).to_have_text(HOSTILE)
    row.locator("button[data-open=app]").click()
    expect(page.locator("#drawer pre.message").first).to_have_text(HOSTILE)
    expect(page.locator("#drawer .timeline .msg")).to_have_text(HOSTILE)
    assert page.evaluate("window.pwned") is None
    assert (
        page.locator("img[src=x], #rows b:text-is('bold'), #drawer b:text-is('bold')").count() == 0
    )


def test_badges_show_progress_exits_and_exhausted_retries_and_the_filters_narrow_the_list(
    dashboard: Callable[..., DashboardProcess], publisher: Publisher, page: Page
) -> None:
    device = "sim-badges"
    progress = {"percent": 42, "bytesDone": 42, "bytesTotal": 100}
    exhausted = pull_error("gone", retry=10) | {
        "type": "ErrImagePull", "exhausted": True, "nextRetry": None,
    }  # fmt: skip
    publisher.send(
        [
            (f"fleet/{device}/availability", "online"),
            (
                f"fleet/{device}/services/dl",
                service_status(device, "dl", serviceStatus="downloading", progress=progress),
            ),
            (
                f"fleet/{device}/services/job",
                service_status(device, "job", serviceStatus="exited", exitCode=0),
            ),
            (f"fleet/{device}/services/gone", service_status(device, "gone", exhausted)),
            *sim_device("sim-calm", services=1),
            ("fleet/sim-away/availability", "offline"),
        ]
    )
    page.goto(dashboard().url)
    row = page.locator(f'article[data-id="{device}"]')
    expect(row.locator('li[data-service="dl"] .badge')).to_have_text("Downloading 42 %")
    expect(row.locator('li[data-service="dl"] progress')).to_have_attribute("value", "42")
    expect(row.locator('li[data-service="job"] .badge')).to_have_text("Exited (0)")
    gone = row.locator('li[data-service="gone"]')
    expect(gone.locator(".badge")).to_have_text("ErrImagePull")
    expect(gone.locator(".retries")).to_have_text("10/10")
    expect(gone.locator(".exhausted")).to_have_text("exhausted")
    assert gone.locator(".countdown").count() == 0
    ids = page.locator("article.device:visible")
    expect(ids).to_have_count(3)
    assert ids.first.get_attribute("data-id") == device  # problems first
    page.select_option("#status-filter", "offline")
    expect(ids).to_have_count(1)
    expect(ids.first).to_have_attribute("data-id", "sim-away")
    page.select_option("#status-filter", "all")
    page.fill("#filter", "calm")
    expect(ids).to_have_count(1)
    expect(ids.first).to_have_attribute("data-id", "sim-calm")
    page.fill("#filter", "ErrImagePull")
    expect(ids).to_have_count(1)
    expect(ids.first).to_have_attribute("data-id", device)


def test_the_page_reconnects_by_itself_after_the_server_restarts(
    dashboard: Callable[..., DashboardProcess], publisher: Publisher, page: Page
) -> None:
    publisher.send(sim_device("sim-a", services=2))
    board = dashboard()
    page.goto(board.url)
    page.evaluate("window.sameDocument = true")
    expect(page.locator('article[data-id="sim-a"] .badge').first).to_have_text("Running")
    board.stop()
    expect(page.locator("#conn")).to_have_text("reconnecting to the dashboard…")
    board.start()  # same port
    publisher.send(sim_device("sim-a", services=2, failing=1))
    failing = page.locator('article[data-id="sim-a"] li[data-service="svc-0"] .badge')
    expect(failing).to_have_text("ImagePullBackOff", timeout=30_000)
    expect(page.locator("#conn")).to_have_text("live")
    assert page.evaluate("window.sameDocument") is True


def test_a_thousand_devices_load_in_the_browser_and_live_updates_are_coalesced(
    dashboard: Callable[..., DashboardProcess], publisher: Publisher, page: Page
) -> None:
    devices = [f"sim-{i:04d}" for i in range(1000)]
    messages = [
        m for i, d in enumerate(devices) for m in sim_device(d, 5, failing=int(i % 10 == 0))
    ]
    publisher.send(messages)
    board = dashboard()

    page.goto(board.url)
    page.wait_for_function("window.fleetDashboard && window.fleetDashboard.loadedAt !== null")
    loaded_ms = page.evaluate("window.fleetDashboard.loadedAt")  # since navigation started
    print(f"\n1000 devices x 5 services loaded in the browser in {loaded_ms:.0f} ms")
    assert loaded_ms < 10_000
    expect(page.locator("#summary")).to_have_text("1000 devices · 100 in error · 0 offline")
    assert page.locator("article.device").count() == 1000
    assert page.locator("li.svc").count() == 5000
    first = page.locator("article.device").first
    assert first.get_attribute("data-id") == "sim-0000"  # problems first

    untouched = page.locator('article[data-id="sim-0999"]')
    untouched.evaluate("el => { el.dataset.kept = 'yes' }")
    before = page.evaluate("({...window.fleetDashboard})")
    burst = []
    for round_ in range(3):
        for device in devices[1:101]:
            error = pull_error(f"round {round_}")
            burst.append((f"fleet/{device}/services/svc-1", service_status(device, "svc-1", error)))
    started = time.monotonic()
    publisher.send(burst)  # 300 messages
    selector = 'article[data-id="sim-0100"] li[data-service="svc-1"] .msg'
    shown = f"document.querySelector({selector!r})?.textContent === 'round 2'"
    wait_for(lambda: page.evaluate(shown), timeout=30, interval=0.05, what="the last change")
    seconds = time.monotonic() - started
    last = page.locator('article[data-id="sim-0100"] li[data-service="svc-1"]')
    expect(last.locator(".msg")).to_have_text("round 2")
    expect(last.locator(".badge")).to_have_text("ImagePullBackOff")
    after = page.evaluate("({...window.fleetDashboard})")
    print(
        f"300 messages shown in {seconds:.2f} s with "
        f"{after['updates'] - before['updates']} updates, "
        f"{after['rowsDrawn'] - before['rowsDrawn']} rows drawn"
    )
    assert after["updates"] - before["updates"] < 100  # coalesced, not one per message
    assert after["rowsDrawn"] - before["rowsDrawn"] < 1000  # changed rows only, never all
    assert untouched.get_attribute("data-kept") == "yes"  # an unchanged row is not redrawn
    assert after["snapshots"] == 1
