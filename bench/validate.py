"""Benchmark of target intake (run on demand, never in the test suite).

    .venv/bin/python -m bench.validate [--repeats 30]

Times `intake.decide` (size limit, bounded JSON reading, schema walk, rules, version rules)
in-process on worst-case payloads of up to the default size limit (256 KiB), each built to
stress one part: huge port ranges, thousands of small leaves, repeated keys, bracket-dense
nesting within the depth limit, escapes that the depth scan must skip, thousands of errors.
Prints a Markdown table (median and max milliseconds) and writes bench/results/validate.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet_agent.intake import DEFAULT_MAX_BYTES, decide

LIMIT = DEFAULT_MAX_BYTES
RESULTS = Path(__file__).resolve().parent / "results"


def _service(i: int, **config: Any) -> dict[str, Any]:
    return {"serviceId": i, "serviceName": f"s{i}", "imageName": "fleet/app:1", "config": config}


def _doc(services: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"version": 1, "apps": {"1": {"appId": 1, "services": services}}, **extra}


def _fill(make: Callable[[int], bytes]) -> bytes:
    """The largest payload `make(n)` gives within the limit (n found by doubling, then halving)."""
    low, high = 1, 2
    while len(make(high)) <= LIMIT:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(make(middle)) <= LIMIT else (low, middle)
    return make(low)


def _encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def payloads() -> dict[str, bytes]:
    full_range = "1-65535:1-65535"
    return {
        # 100 services (the cap), each with as many full-range ports as fit: refused by the cap
        "port ranges 1-65535:1-65535": _fill(
            lambda n: _encode(_doc([_service(i, ports=[full_range] * n) for i in range(100)]))
        ),
        # 100 services, each with many small valid ports, volumes and variables: accepted
        "100 full services, accepted": _fill(
            lambda n: _encode(
                _doc(
                    [
                        _service(
                            i,
                            ports=[f"{p}:{p}/udp" for p in range(1, n // 8 + 2)],
                            volumes=[f"v{v}:/d{v}:ro" for v in range(n // 8 + 1)],
                            environment={f"K{k}": "v" for k in range(n)},
                        )
                        for i in range(100)
                    ]
                )
            )
        ),
        # as many distinct single ports as fit, 1,000 per service (under the binding cap)
        "distinct ports, 1,000 per service": _fill(
            lambda n: _encode(
                _doc(
                    [
                        _service(
                            i, ports=[f"{p}:{p}" for p in range(1000 * i + 1, 1000 * i + 1001)]
                        )
                        for i in range(n // 1000)
                    ]
                    + [_service(99, ports=[f"{p}:{p}" for p in range(60001, 60001 + n % 1000)])]
                )
            )
        ),
        "distinct volumes and arguments": _fill(
            lambda n: _encode(
                _doc(
                    [
                        _service(
                            1, volumes=[f"/srv/{v}:/d/{v}:ro" for v in range(n)], command=["x"] * n
                        )
                    ]
                )
            )
        ),
        "empty apps": _fill(lambda n: _encode({"apps": {str(i): {"appId": i} for i in range(n)}})),
        "one service, tiny variables": _fill(
            lambda n: _encode(_doc([_service(1, environment={f"{k}": "" for k in range(n)})]))
        ),
        "repeated keys": _fill(
            lambda n: _encode(_doc([_service(1)])).replace(
                b'"config":{}', b'"config":{"labels":{' + b'"a":"b",' * n + b'"a":"b"}}'
            )
        ),
        "bracket-dense, depth 31": _fill(
            lambda n: _encode(_doc([_service(1, labels={"x": [[[[[[[[]]]]]]]] * n})]))
        ),
        "escapes and brackets in strings": _fill(
            lambda n: _encode(_doc([_service(1, command=['[\\"{' * 4] * n)]))
        ),
        "thousands of errors": _fill(
            lambda n: _encode({"apps": [{"appId": -i, "services": 1} for i in range(n)]})
        ),
        "many services, over the cap": _fill(
            lambda n: _encode(_doc([_service(i) for i in range(n)]))
        ),
        "depth 100,000": b"[" * (LIMIT // 2) + b"]" * (LIMIT // 2),
    }


def measure(payload: bytes, repeats: int) -> tuple[list[float], int]:
    times, code = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        code = decide(payload, None, 0.0).ack.code
        times.append((time.perf_counter() - start) * 1000)
    return times, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rows = []
    print("| payload | bytes | code | median (ms) | max (ms) |\n|---|---|---|---|---|")
    for name, payload in payloads().items():
        times, code = measure(payload, args.repeats)
        row = {
            "payload": name,
            "bytes": len(payload),
            "code": code,
            "median_ms": round(statistics.median(times), 2),
            "max_ms": round(max(times), 2),
        }
        rows.append(row)
        print(f"| {name} | {len(payload)} | {code} | {row['median_ms']} | {row['max_ms']} |")
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    (RESULTS / "validate.json").write_text(json.dumps({"at": stamp, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
