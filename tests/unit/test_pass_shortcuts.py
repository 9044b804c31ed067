"""Property: the short ways a converged pass takes give exactly what the long ways give.

A pass skips work for services that did not change: the one-container case of choosing the
current container, the summary's look at a quiet service, and comparing retained topics as
Structs instead of encoded bytes. Each is compared here with the general computation over
random inputs, so a shortcut can never publish or count anything the full derivation would not.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from fleet_agent import planner, summary
from fleet_agent.feed import FeedState, conclude, retained
from fleet_agent.model import Alert, DesiredService, ServiceState, ServiceStatus
from fleet_agent.runtime import Container
from fleet_agent.summary import Bucket, Track

from .factories import DEVICE, T0, desired, report, status, status_error

PROPERTY = settings(max_examples=300, deadline=dt.timedelta(seconds=5))
STATES = ["running", "restarting", "paused", "exited", "created", "dead", "removing"]
HASHES = st.sampled_from(["h1", "h2", None])
_SHOWN: list[ServiceState] = ["running", "error", "starting", "exited", "downloading"]
SERVICE_STATES = st.sampled_from(_SHOWN)
ERRORS = st.one_of(
    st.none(),
    st.builds(
        status_error,
        st.sampled_from(["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"]),
        retry_count=st.integers(1, 4),
        exhausted=st.booleans(),
        at=st.sampled_from([T0, T0 + 1]),
    ),
)


def _general(of: DesiredService, mine: list[Container]) -> Container | None:
    """`current_container` without its one-container shortcut."""
    rank = planner._STATE_RANK
    fitting = [c for c in mine if c.config_hash == of.config_hash and c.state in rank]
    return min(fitting, key=lambda c: (rank[c.state], c.id), default=None)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), HASHES, st.sampled_from(STATES))))
def test_the_current_container_is_the_same_with_or_without_the_one_container_shortcut(
    rows: list[tuple[str, str | None, str]],
) -> None:
    of = replace(desired("web"), config_hash="h1")
    mine = [Container(cid, f"fleet.{cid}", "web", h, "app:1", state) for cid, h, state in rows]

    assert planner.current_container(of, mine) == _general(of, mine)


def _track(data: st.DataObject) -> Track:
    buckets = data.draw(
        st.dictionaries(
            st.integers(0, 3),
            st.builds(Bucket, restarts=st.integers(0, 2), seconds=st.floats(0, 100)),
            max_size=2,
        )
    )
    return Track(
        status=data.draw(SERVICE_STATES),
        error_type=data.draw(st.sampled_from([None, "ImagePullBackOff", "CrashLoopBackOff"])),
        retry_count=data.draw(st.integers(0, 4)),
        restart_count=data.draw(st.integers(0, 3)),
        in_error=data.draw(st.booleans()),
        seen_at=data.draw(st.sampled_from([None, T0 - 30])),
        buckets=buckets,
    )


@PROPERTY
@given(st.data())
def test_the_summarys_look_at_a_quiet_service_counts_what_the_full_look_counts(
    data: st.DataObject,
) -> None:
    track = _track(data)
    seen = replace(
        status(service_status=data.draw(SERVICE_STATES), error=data.draw(ERRORS)),
        restart_count=data.draw(st.integers(0, 3)),
    )
    alert = data.draw(st.sampled_from([None, "warning", "critical"]))
    raised = None if alert is None else Alert(DEVICE, "nodered", alert, "X", "m", "t", "t")
    slot = data.draw(st.integers(0, 3))

    quick = summary._look(track, seen, raised, slot, T0)

    assert quick == summary._counted(track, seen, raised, slot, T0)


def _status(data: st.DataObject, at: float) -> ServiceStatus:
    return replace(
        status(service_status=data.draw(SERVICE_STATES), error=data.draw(ERRORS), at=at),
        restart_count=data.draw(st.integers(0, 2)),
        container_id=data.draw(st.sampled_from(["c-1", "c-2", None])),
    )


@PROPERTY
@given(st.data())
def test_a_retained_topic_is_sent_again_exactly_when_its_encoded_content_changed(
    data: st.DataObject,
) -> None:
    """The MQTT link compares Struct keys; the publications are those a comparison of the
    encoded content without stamps (what it compared before) would give."""
    first, one = conclude(FeedState(), report(_status(data, T0), at=T0), T0)
    _, two = conclude(first, report(_status(data, T0 + 30), at=T0 + 30), T0 + 30)
    before, after = retained(one), retained(two)

    for topic in before.keys() & after.keys():
        same = before[topic].key == after[topic].key  # what the link compares now
        old = msgspec.json.encode(before[topic].key), msgspec.json.encode(after[topic].key)
        assert same == (old[0] == old[1]), topic
    status_key = before["services/nodered"].key
    assert status_key == replace(one.services[0], updated_at="")
