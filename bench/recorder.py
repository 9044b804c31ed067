"""Recorder benchmark: does one recorder keep up with a fleet's retained messages?

    .venv/bin/python -m bench.recorder --devices 1000 [--databases sqlite,postgresql] [--repeats 3]

Per database and repeat: a fresh private Mosquitto, a fresh database (an SQLite file, or a new
database on a private PostgreSQL 15 server with `fsync=off`, as the tests start it) and
`Recorder` in a child process of its own (so its memory and CPU time are its alone). N simulated
devices' retained messages (availability, info, 2 service statuses, 2 histories and the state:
7 per device, 3 transitions; every tenth device with a service in ImagePullBackOff, the same as
tests/integration/test_recorder_scale.py) are published at QoS 1 while it listens. Measures:
- after the last ack: seconds from the broker's acknowledgement of the last publish until every
  device_state, service_status and transitions row is in the database (polled every 50 ms);
- peak rows pending in the recorder's batch (bounded by --max-pending);
- the recorder's peak resident memory (VmHWM) and its CPU time (user + system) for the run,
  which machine load distorts far less than the wall-clock figure.
Prints a Markdown table and writes bench/results/recorder.json (machine, load, arguments).
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, write_result
from tests.integration.brokers import PrivateMosquitto
from tests.integration.postgres import PrivatePostgres
from tests.integration.recorders import fleet_rows, new_database, publish_fleet, row_counts

READY = "recorder ready"


def serve(db_url: str, mqtt_url: str, options: dict[str, Any]) -> None:
    """The child: record until SIGTERM, then print its own figures as one JSON line. Our
    stdout is the parent's pipe: everything else (the recorder's logs) goes to stderr."""
    out, sys.stdout = sys.stdout, sys.stderr
    from fleet_agent.operator.connection import Connection  # noqa: PLC0415
    from fleet_agent.operator.recorder import store  # noqa: PLC0415
    from fleet_agent.operator.recorder.service import Options, Recorder  # noqa: PLC0415

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = store.open_engine(db_url)
    recorder = Recorder(engine, Connection(mqtt_url=mqtt_url), Options(**options))
    recorder.start()
    print(READY, file=out, flush=True)
    stop.wait()
    recorder.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    doc = {"peak": recorder.peak, "written": recorder.written, "hwm_kib": hwm}
    print(json.dumps(doc | {"cpu_s": usage.ru_utime + usage.ru_stime}), file=out, flush=True)


def one_run(kind: str, devices: int, options: dict[str, Any], workdir: Path) -> dict[str, Any]:
    broker = PrivateMosquitto(workdir / "broker")
    broker.start()
    server = PrivatePostgres() if kind == "postgresql" else None
    child: subprocess.Popen[str] | None = None
    try:
        if server is not None:
            server.start()
        url = new_database(kind, workdir, server)
        argv = [sys.executable, "-m", "bench.recorder", "--serve", url, broker.url]
        argv += ["--options", json.dumps(options)]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert child.stdout is not None
        if child.stdout.readline().strip() != READY:
            raise RuntimeError(f"the recorder did not start (exit {child.wait()})")
        from fleet_agent.operator.recorder import store  # noqa: PLC0415

        engine = store.open_engine(url)
        started = time.monotonic()
        messages = publish_fleet(broker.port, devices, "sim", time.time() - 60)
        acked = time.monotonic()
        expected = fleet_rows(devices)
        while row_counts(engine) != expected:
            if time.monotonic() - acked > 600:
                raise RuntimeError(f"rows after 600 s: {row_counts(engine)}, not {expected}")
            time.sleep(0.05)
        done = time.monotonic()
        engine.dispose()
        child.send_signal(signal.SIGTERM)
        own = json.loads(child.stdout.readline())
        child.wait(60)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(10)
        if server is not None:
            server.stop()
        broker.stop()
    return {
        "messages": messages,
        "publish_s": round(acked - started, 3),
        "after_last_ack_s": round(done - acked, 3),
        "peak_pending": own["peak"],
        "rows_written": own["written"],
        "rss_peak_mib": round(own["hwm_kib"] / 1024, 1),
        "cpu_s": round(own["cpu_s"], 2),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(r[key] for r in runs)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flush-interval", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--max-pending", type=int, default=2000)
    parser.add_argument("--serve", nargs=2, metavar=("DB_URL", "MQTT_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        db_url, mqtt_url = args.serve
        serve(db_url, mqtt_url, json.loads(args.options))
        return
    options = {
        "flush_interval": args.flush_interval,
        "batch_size": args.batch_size,
        "max_pending": args.max_pending,
    }
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    if not kinds or set(kinds) - {"sqlite", "postgresql"}:
        parser.error("--databases: a comma-separated list of sqlite and postgresql")
    figures: dict[str, Any] = {}
    for kind in kinds:
        runs = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as workdir:
                runs.append(one_run(kind, args.devices, options, Path(workdir)))
        keys = ("after_last_ack_s", "publish_s", "peak_pending", "rss_peak_mib", "cpu_s")
        figures[kind] = {"median": {k: _median(runs, k) for k in keys}, "runs": runs}
    print(
        "| database | after the last ack (s) | peak rows pending | recorder peak RSS (MiB) "
        "| recorder CPU (s) |\n|---|---|---|---|---|"
    )
    for kind, doc in figures.items():
        m = doc["median"]
        print(
            f"| {kind} | {m['after_last_ack_s']} | {m['peak_pending']} | {m['rss_peak_mib']} "
            f"| {m['cpu_s']} |"
        )
    shown = {k: v for k, v in vars(args).items() if k not in ("serve", "options")}
    write_result("recorder", figures, shown)


if __name__ == "__main__":
    main()
