"""Fixtures of the dashboard tests: a real headless Chromium (Debian's package, driven by
Playwright with a fresh profile per test) and dashboards as real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.integration.brokers import PrivateMosquitto
from tests.integration.dashboard.kit import CHROMIUM, CHROMIUM_FLAGS, DashboardProcess, Publisher

pytestmark = pytest.mark.integration
# Waiting for what the page shows may take a while on a loaded 2-core machine; no assertion
# here is about speed (the 1,000-device load time is asserted generously, on its own).
expect.set_options(timeout=30_000)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A Mosquitto as docs/dashboard.md asks for: a monitor reads a snapshot of every device at
    once, more than Mosquitto's default queue of 1000 messages per client holds."""
    instance = PrivateMosquitto(tmp_path)
    instance.config.write_text(instance.config.read_text() + "max_queued_messages 100000\n")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A page of a headless Chromium with a fresh --user-data-dir; page errors fail the test."""
    errors: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 720},
            # Playwright's wait_for_function evaluates strings, which the page's CSP forbids;
            # bypassing it also makes the escaping tests prove escaping, not the CSP.
            bypass_csp=True,
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(30_000)
        yield page
        context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def dashboard(
    tmp_path: Path, broker: PrivateMosquitto
) -> Iterator[Callable[..., DashboardProcess]]:
    """Start dashboards on `broker` (extra CLI arguments allowed); all stopped afterwards."""
    started: list[DashboardProcess] = []

    def start(*args: str) -> DashboardProcess:
        process = DashboardProcess(tmp_path, broker.url, *args)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def publisher(broker: PrivateMosquitto) -> Iterator[Publisher]:
    client = Publisher(broker.port)
    yield client
    client.close()
