"""Benchmark: how many MQTT messages one target change costs, per topic, on the real broker.

    python -m bench.chatter [--services 55] [--changed 5] [--versions 3]

`fleet-agent run` (a child process, real engine, real Mosquitto) converges on version 1 of a
target with `--services` services; then each further version changes `--changed` of them (a
new command, so they are replaced) and leaves the rest alone. A subscriber to `fleet/#` counts
what each version caused: from its publication until the device reports it converged and
nothing more arrived for `--settle` seconds. Figures per version: messages in all, by kind of
topic, the most any one topic got, and the topics that got more than one.

The contract puts `targetVersion` into every service's status, so one status message per
service per version is expected; history, alert and event traffic for services that did not
change, or a second message on any retained topic, is chatter.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import common


def services(env: dict[str, str], count: int, changed: int, version: int) -> list[Any]:
    """`changed` services get a command of this version's; the others keep theirs."""
    image = env["FLEET_TEST_IMAGE_1"]
    loop = common.LOOP

    def command(i: int) -> list[str]:
        return [*loop[:-1], f"{loop[-1]} # v{version}"] if i < changed else loop

    return [common.service(f"s{i:02d}", image, i + 1, command(i)) for i in range(count)]


def converged(watch: common.Watch, device: str, version: int, since: float) -> float:
    arrived, _ = watch.first(
        f"{device}/state",
        since,
        lambda s: s.get("targetVersion") == version and s.get("converged"),
        timeout=600,
    )
    return arrived


def quiet(watch: common.Watch, settle: float, timeout: float = 120) -> None:
    """Wait until nothing arrived for `settle` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = watch.seen[-1][0] if watch.seen else 0.0
        if time.time() - last >= settle:
            return
        time.sleep(0.1)


def kind(suffix: str) -> str:
    return suffix.split("/", 1)[0] if "/" in suffix else suffix


def count(watch: common.Watch, device: str, since: float, changed: set[str]) -> dict[str, Any]:
    prefix = f"fleet/{device}/"
    topics = Counter(
        t.removeprefix(prefix)
        for at, t, _ in list(watch.seen)
        if at >= since and t.startswith(prefix) and t != f"{prefix}target"
    )
    events = [
        json.loads(p)
        for at, t, p in list(watch.seen)
        if at >= since and t == f"{prefix}events" and p
    ]
    retained = {t: n for t, n in topics.items() if t != "events"}
    unchanged_chatter = sorted(
        t
        for t in retained
        if kind(t) in ("history", "alerts") and t.split("/", 1)[1] not in changed
    )
    return {
        "messages": sum(topics.values()),
        "by_kind": dict(sorted(_kinds(topics).items())),
        "retained_max": max(retained.values(), default=0),
        "retained_over_one": {t: n for t, n in sorted(retained.items()) if n > 1},
        "events": len(events),
        "events_of_unchanged": sum(1 for e in events if e.get("service") not in changed),
        "history_or_alerts_of_unchanged": unchanged_chatter,
    }


def _kinds(topics: Counter[str]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for topic, n in topics.items():
        kinds[kind(topic)] += n
    return kinds


def run(env: dict[str, str], args: argparse.Namespace) -> list[dict[str, Any]]:
    api = common.api_client(env)
    device = common.new_device("chatter")
    watch = common.Watch(env, "fleet")
    rows = []
    try:
        with (
            tempfile.TemporaryDirectory() as workdir,
            common.agent_process(env, device, Path(workdir), reconcile_interval=300),
        ):
            time.sleep(1.5)
            names = {f"s{i:02d}" for i in range(args.changed)}
            for version in range(1, args.versions + 2):
                changed = args.changed if version > 1 else 0
                target = common.target(version, services(env, args.services, changed, version))
                sent = watch.publish(f"{device}/target", target)
                done = converged(watch, device, version, sent)
                quiet(watch, args.settle)
                if version > 1:  # version 1 is the cold start
                    row = count(watch, device, sent, names)
                    row |= {"version": version, "converged_s": round(done - sent, 3)}
                    rows.append(row)
                    print(json.dumps(row))
    finally:
        watch.close()
        common.remove_device(api, device)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=55)
    parser.add_argument("--changed", type=int, default=5)
    parser.add_argument("--versions", type=int, default=3, help="changes after the first")
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    env = common.environment()
    rows = run(env, args)
    common.write_result("chatter", {"versions": rows}, vars(args))


if __name__ == "__main__":
    main()
