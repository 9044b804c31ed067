"""Property: whatever arrives as a target or a command, the answer is an accepted target or our
rejection (an ack, a failed command result), never another exception, and soon.

Random JSON, random bytes, and valid targets mutated (a subtree replaced, the text cut, a key
repeated, nesting deepened, a byte flipped) go through `intake.decide` and `commands.execute`.
An accepted target must also turn into container specs and persist, as the agent will do.
The deadline is generous (5 s for work that takes milliseconds): it catches a blow-up (minutes
of validation), not a slow machine.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fleet_agent.commands import CommandResult, execute
from fleet_agent.intake import decide
from fleet_agent.model import Target
from fleet_agent.spec import build_spec, desired_services
from fleet_agent.store import Persisted

from .factories import T0

CODES = {200, 204, 400, 409, 413}
PROPERTY = settings(
    max_examples=150,
    deadline=dt.timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**53 - 1, 2**53, 10**30, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["80", "٨٠:٨٠", "1-65535:1-65535", "999.999.999.999:1:1", "a\x00b", "/"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
names = st.from_regex(r"[a-z0-9]([a-z0-9_-]{0,8}[a-z0-9])?", fullmatch=True)
ports = st.one_of(
    st.integers(0, 70000).map(str),
    st.tuples(st.integers(0, 70000), st.integers(0, 70000)).map(lambda p: f"{p[0]}:{p[1]}"),
    st.tuples(st.integers(1, 65535), st.integers(0, 2000)).map(
        lambda p: f"{p[0]}-{p[0] + p[1]}:{p[0]}-{p[0] + p[1]}/udp"
    ),
    st.sampled_from(["127.0.0.1::80", "[::1]:80:80", "0.0.0.0:53:53/udp", "1-65535"]),
)
volumes = st.sampled_from(
    ["data:/data", "/srv/x:/x:ro", "data:/d:rw,nocopy", "/srv/y:/y:rshared", "d:/d", "x:/:ro"]
)
configs = st.fixed_dictionaries(
    {},
    optional={
        "ports": st.lists(ports, max_size=4),
        "volumes": st.lists(volumes, max_size=3),
        "environment": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3),
        "command": st.lists(st.text(max_size=6), max_size=3),
        "restart": st.sampled_from(["always", "no", "unless-stopped", "on-failure"]),
        "labels": st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2),
        "networkMode": st.sampled_from(["none", "host", "bridge"]),
    },
)
services = st.fixed_dictionaries(
    {
        "serviceId": st.integers(0, 2**54),
        "serviceName": names,
        "imageName": st.sampled_from(["busybox", "fleet/app:1", "127.0.0.1:5000/a/b:2", "A"]),
        "config": configs,
    }
)
targets: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"apps": st.dictionaries(st.integers(0, 99).map(str), st.just({}), max_size=3)},
    optional={"version": st.integers(0, 2**54)},
)


@st.composite
def valid_ish_targets(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(targets)
    for key in doc["apps"]:
        app_services = draw(st.lists(services, max_size=3))
        doc["apps"][key] = {"appId": int(key), "services": app_services}
    return doc


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, item in items:
        found += _nodes(item, (*path, key))
    return found


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return doc


def _mutate_text(payload: bytes, how: str, at: int) -> bytes:
    cut = at % (len(payload) + 1)
    if how == "cut":
        return payload[:cut]
    if how == "flip" and payload:
        return payload[:cut] + bytes([payload[cut % len(payload)] ^ 0x5A]) + payload[cut + 1 :]
    if how == "repeat key":
        return payload.replace(b'"appId":', b'"appId": 1, "appId":', 1)
    if how == "deepen":
        return b'{"apps": ' + b"[" * (at % 3000) + payload + b"]" * (at % 3000) + b"}"
    return payload


def _answered(payload: bytes) -> None:
    decision = decide(payload, None, T0)
    event(f"code {decision.ack.code}")  # shown by --hypothesis-show-statistics
    assert decision.ack.code in CODES
    assert decision.ack.accepted == (decision.ack.code == 200)
    assert (decision.target is not None) == decision.ack.accepted
    msgspec.json.encode(decision.ack)  # the ack can always be published
    if decision.target is not None:
        _usable(decision.target)


def _usable(target: Target) -> None:
    """What the agent does with an accepted target: persist it, build each container spec."""
    msgspec.json.encode(Persisted(target, target.version))
    for desired in desired_services(target):
        build_spec("dev-001", desired)


@PROPERTY
@given(json_values)
def test_any_json_document_is_accepted_or_rejected_never_raised(doc: Any) -> None:
    _answered(json.dumps(doc).encode())


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes_are_accepted_or_rejected_never_raised(payload: bytes) -> None:
    _answered(payload)


@PROPERTY
@given(
    valid_ish_targets(),
    st.data(),
    st.sampled_from(["none", "cut", "flip", "repeat key", "deepen"]),
    st.integers(0, 10**6),
)
def test_mutated_targets_are_accepted_or_rejected_never_raised(
    doc: dict[str, Any], data: st.DataObject, how: str, at: int
) -> None:
    if data.draw(st.booleans(), label="replace a subtree"):
        path = data.draw(st.sampled_from(_nodes(doc)), label="path")
        doc = _replace(doc, path, data.draw(json_values, label="replacement"))
    _answered(_mutate_text(json.dumps(doc).encode(), how, at))


class _Actions:
    def retry(self, services: Any) -> list[str]:
        return list(services)

    def reconcile(self) -> None:
        pass

    def known(self) -> set[str]:
        return {"nodered"}


@PROPERTY
@given(
    st.sampled_from(["retry", "reconcile", "restart"]),
    st.one_of(
        json_values.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=200),
        st.fixed_dictionaries({}, optional={"service": json_values, "requestId": json_values}).map(
            lambda d: json.dumps(d).encode()
        ),
    ),
    st.sampled_from(["none", "cut", "flip", "repeat key", "deepen"]),
    st.integers(0, 10**6),
)
def test_any_command_gets_a_result_never_an_exception(
    name: str, payload: bytes, how: str, at: int
) -> None:
    actions = _Actions()

    result = execute(
        name, _mutate_text(payload, how, at), actions.retry, actions.reconcile, actions.known
    )

    assert isinstance(result, CommandResult) and result.command == name
    assert result.ok or result.error
    msgspec.json.encode(result)
