"""Benchmarks 2 and 3: exit detection, and retry punctuality, on the real engine over MQTT.

    python -m bench.latency exits [--runs 20]
    python -m bench.latency retries [--seconds 40]

exits: a container exits on its own (`sh -c "sleep 1; exit N"`, restart `no`); the figure is
the arrival of its `exited` status (with that exit code) on MQTT minus the engine's own
`FinishedAt`.
retries: a service whose image tag is missing fails to pull again and again (backoff 0.25 s
doubling to 1 s); each status announces `error.nextRetry`; the attempt is the agent's first
Docker API request about that image after the announcement, seen by the counting proxy on the
engine socket. The figure is attempt minus announced time; beside it, when the list call of the
pass that made the attempt went out (the wake-up's own lateness; the rest is that pass's work).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.sockproxy import SocketProxy


def exits(env: dict[str, str], runs: int) -> dict[str, Any]:
    api = common.api_client(env)
    device = common.new_device("exit")
    watch = common.Watch(env, f"fleet/{device}")
    samples = []
    try:
        with (
            tempfile.TemporaryDirectory() as workdir,
            common.agent_process(env, device, Path(workdir), reconcile_interval=300),
        ):
            time.sleep(1.5)
            for v in range(1, runs + 2):
                code = 10 + v
                job = common.service(
                    "job",
                    env["FLEET_TEST_IMAGE_1"],
                    1,
                    ["sh", "-c", f"sleep 1; exit {code}"],
                    restart="no",
                )
                sent = watch.publish("target", common.target(v, [job]))
                arrived, status = watch.first(
                    "services/job",
                    sent,
                    lambda s, c=code: s["exitCode"] == c and s["serviceStatus"] == "exited",
                )
                if v > 1:  # the first run warms up
                    samples.append(arrived - common.finished_at(api, status["containerId"]))
    finally:
        watch.close()
        common.remove_device(api, device)
    return {"exit_to_status_ms": common.summary(samples)}


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def retries(env: dict[str, str], seconds: float) -> dict[str, Any]:
    device = common.new_device("retry")
    missing = f"{env['FLEET_TEST_REGISTRY']}/fleet-test/app:nope"
    watch = common.Watch(env, f"fleet/{device}")
    with tempfile.TemporaryDirectory() as folder:
        proxy = SocketProxy(env["DOCKER_HOST"], str(Path(folder) / "docker.sock"))
        proxy.start()
        try:
            with common.agent_process(
                {**env, "DOCKER_HOST": proxy.url},
                device,
                Path(folder),
                reconcile_interval=300,
                backoff_initial=0.25,
                backoff_max=1,
                max_retries=1000,
            ):
                sent = watch.publish(
                    "target", common.target(1, [common.service("bad", missing, 1, common.LOOP)])
                )
                time.sleep(seconds)
        finally:
            watch.close()
            proxy.close()
    announced: dict[float, float] = {}  # nextRetry -> when it was first seen
    for at, topic, payload in watch.seen:
        if topic.endswith("/services/bad") and at >= sent and payload:
            error = json.loads(payload).get("error") or {}
            if error.get("nextRetry"):
                announced.setdefault(_epoch(error["nextRetry"]), at)
    attempts = [at for at, _, path in proxy.requests if "fleet-test/app" in path]
    lists = [at for at, _, path in proxy.requests if "/containers/json" in path]
    late, woke = [], []
    for due, seen in sorted(announced.items()):
        after = [a for a in attempts if a >= seen]
        if after:
            late.append(after[0] - due)
            # the pass that made the attempt: its list call, the last one before the attempt
            woke += [max((a for a in lists if a <= after[0]), default=after[0]) - due]
    return {
        "lateness_ms": common.summary(late),
        "pass_list_ms": common.summary(woke),  # the pass's list call, after the deadline
        "announced": len(announced),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", choices=["exits", "retries"])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    env = common.environment()
    if args.which == "exits":
        common.write_result("exits", exits(env, args.runs), vars(args))
    else:
        common.write_result("retries", retries(env, args.seconds), vars(args))


if __name__ == "__main__":
    main()
