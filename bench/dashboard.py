"""Dashboard benchmark in a real headless Chromium (run on demand, never in the test suite).

    .venv/bin/python -m bench.dashboard [--devices 1000] [--services 5] [--repeats 5]

A private Mosquitto holds the retained messages of N simulated devices (every tenth with one
service in error and its alert); `fleet-agent dashboard` runs as a process on it. Measures:
- connect: seconds from starting the dashboard until it answers (the client has then read
  every retained message: its sync marker came back);
- page load: milliseconds in the browser from navigation start until the first snapshot is
  drawn (the page's own `performance.now()`), over a fresh page each repeat;
- burst: seconds from publishing 3 changes to each of 100 devices (300 messages) until the
  last one shows, with how many stream updates and rows were drawn for it;
- the dashboard's resident memory (VmRSS) after the load and after the bursts.
Results are printed as a Markdown table and written to bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from tests.integration.brokers import PrivateMosquitto
from tests.integration.dashboard.kit import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    DashboardProcess,
    Publisher,
    pull_error,
    service_status,
    sim_device,
)
from tests.integration.helpers import REPO


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def page_load(page: Page, url: str) -> float:
    page.goto(url)
    page.wait_for_function("window.fleetDashboard && window.fleetDashboard.loadedAt !== null")
    loaded: float = page.evaluate("window.fleetDashboard.loadedAt")
    return loaded


def burst(page: Page, publisher: Publisher, devices: list[str], round_: int) -> dict[str, Any]:
    before = page.evaluate("({...window.fleetDashboard})")
    messages = []
    for step in range(3):
        for device in devices[1:101]:
            error = pull_error(f"burst {round_}.{step}")
            messages.append(
                (f"fleet/{device}/services/svc-1", service_status(device, "svc-1", error))
            )
    started = time.monotonic()
    publisher.send(messages)
    last = f'article[data-id="{devices[100]}"] li[data-service="svc-1"] .msg'
    page.wait_for_function(f"document.querySelector('{last}')?.textContent === 'burst {round_}.2'")
    seconds = time.monotonic() - started
    after = page.evaluate("({...window.fleetDashboard})")
    return {
        "seconds": seconds,
        "updates": after["updates"] - before["updates"],
        "rows": after["rowsDrawn"] - before["rowsDrawn"],
    }


def _row(name: str, samples: list[float], unit: str) -> dict[str, Any]:
    return {
        "name": name,
        "unit": unit,
        "n": len(samples),
        "median": round(statistics.median(samples), 3),
        "max": round(max(samples), 3),
    }


def run(devices: int, services: int, repeats: int, workdir: Path) -> list[dict[str, Any]]:
    broker = PrivateMosquitto(workdir / "broker")
    # as docs/dashboard.md asks: a monitor's snapshot is more than the default queue of 1000
    broker.config.write_text(broker.config.read_text() + "max_queued_messages 100000\n")
    broker.start()
    ids = [f"sim-{i:04d}" for i in range(devices)]
    publisher = Publisher(broker.port)
    publisher.send(
        [m for i, d in enumerate(ids) for m in sim_device(d, services, int(i % 10 == 0))]
    )
    board = DashboardProcess(workdir, broker.url)
    started = time.monotonic()
    board.start()
    connect = time.monotonic() - started
    assert board.proc is not None
    rows = [_row("dashboard connect (all retained read)", [connect], "s")]
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(workdir / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                bypass_csp=True,  # wait_for_function evaluates strings
            )
            loads = []
            for _ in range(repeats):
                page = context.new_page()
                loads.append(page_load(page, board.url))
                page.close()
            rows.append(_row(f"page load, {devices} x {services}", loads, "ms"))
            rss_loaded = rss_mib(board.proc.pid)
            page = context.new_page()
            page_load(page, board.url)
            bursts = [burst(page, publisher, ids, r) for r in range(repeats)]
            rows.append(_row("300-message burst shown", [b["seconds"] for b in bursts], "s"))
            rows.append(_row("stream updates per burst", [b["updates"] for b in bursts], "count"))
            rows.append(_row("rows redrawn per burst", [b["rows"] for b in bursts], "count"))
            rows.append(_row("dashboard RSS after load", [rss_loaded], "MiB"))
            rows.append(_row("dashboard RSS after bursts", [rss_mib(board.proc.pid)], "MiB"))
            context.close()
    finally:
        board.stop()
        publisher.close()
        broker.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--services", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        rows = run(args.devices, args.services, args.repeats, Path(workdir))
    print("| measure | unit | runs | median | max |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['unit']} | {row['n']} | {row['median']} | {row['max']} |")
    out = REPO / "bench" / "results" / "dashboard.json"
    out.parent.mkdir(exist_ok=True)
    info = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count()}
    out.write_text(json.dumps(info | {"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
