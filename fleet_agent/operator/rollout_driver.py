"""The rollout controller: the thin loop that drives `rollout_logic` over the broker.

Each tick it reads the fleet model (`FleetClient`) and the retained rollout state and control
request (`rollout_store`), lets the pure `step` decide, stores the new state (intent first),
then publishes the devices' targets and stores that they were sent. It holds a lease in the
state (owner id + expiry, renewed every third of its length) and stops as soon as the retained
state names another owner. See docs/rollouts.md for the guarantees and their limits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import msgspec
import structlog
from msgspec.structs import replace

from fleet_agent.operator import rollout_logic as logic
from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.rollout_model import Lease, State
from fleet_agent.operator.rollout_store import Store

log = structlog.get_logger(__name__)
FINAL = frozenset({"succeeded", "rolled-back", "aborted"})
TICK = 0.2


class LeaseHeld(Exception):
    """Another controller drives this rollout."""


def lease_free(state: State, owner: str, now: float) -> bool:
    lease = state.lease
    return lease is None or lease.owner == owner or lease.expires_at <= now


class Controller:
    def __init__(
        self,
        client: FleetClient,
        store: Store,
        *,
        lease: float = 15.0,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        on_tick: Callable[[State], None] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.lease = lease
        self.owner = owner or f"controller-{uuid.uuid4().hex[:10]}"
        self.clock = clock
        self.on_tick = on_tick
        self._renewed = 0.0

    def acquire(self, state: State, wait: float) -> State:
        """Take the lease (waiting up to `wait` s for a held one to expire) and check, after a
        round trip, that no other controller took it at the same moment."""
        deadline = time.monotonic() + wait
        while not lease_free(state, self.owner, self.clock()):
            if time.monotonic() > deadline:
                assert state.lease is not None
                raise LeaseHeld(
                    f"driven by {state.lease.owner} (lease for another "
                    f"{state.lease.expires_at - self.clock():.0f}s)"
                )
            time.sleep(TICK)
            state = self.store.snapshot()[0] or state
        state = self._renew(state, force=True)
        time.sleep(min(1.0, self.lease / 5))
        current = self.store.snapshot()[0]
        if current is not None and current.lease and current.lease.owner != self.owner:
            raise LeaseHeld(f"driven by {current.lease.owner}")
        return logic.reconcile(state, self.client.devices())

    def _renew(self, state: State, force: bool = False) -> State:
        now = self.clock()
        if not force and now - self._renewed < self.lease / 3:
            return state
        state = replace(state, lease=Lease(self.owner, now + self.lease), updated_at=now)
        self.store.save(state)
        self._renewed = now
        return state

    def run(self, state: State, until: Callable[[State], bool] | None = None) -> State:
        """Drive until the rollout is final (or `until(state)`); release the lease at the end."""
        until = until or (lambda s: s.status in FINAL)
        while True:
            state = self.tick(state)
            if self.on_tick is not None:
                self.on_tick(state)
            if until(state):
                break
            time.sleep(TICK)
        state = replace(state, lease=None, updated_at=self.clock())
        self.store.save(state)
        return state

    def tick(self, state: State) -> State:
        retained, request = self.store.snapshot()
        if retained is not None and retained.lease and retained.lease.owner != self.owner:
            raise LeaseHeld(f"the lease was taken over by {retained.lease.owner}")
        now = self.clock()
        if request is not None:
            state = logic.control(state, request.action, request.id, now)
        before = _essence(state)
        state, todo = logic.step(state, self.client.devices(), now)
        if todo or _essence(state) != before:
            state = self._renew(state, force=True)  # the intent is stored before publishing
        else:
            state = self._renew(state)
        if todo:
            self._publish(state, todo)
            state = self._renew(logic.mark_sent(state, todo), force=True)
        return state

    def _publish(self, state: State, device_ids: list[str]) -> None:
        for device_id in device_ids:
            doc, version = logic.payload_for(state, device_id)
            if doc is None:
                self.client.clear_target(device_id)
            else:
                self.client.publish_target(device_id, doc, version=version)
            log.info("published", device=device_id, version=version, rollout=state.spec.name)


def _essence(state: State) -> bytes:
    return msgspec.json.encode(replace(state, updated_at=0.0, lease=None))
