"""A simulated engine: the Docker adapter's behaviour in memory, for fleets and Docker-less work.

Only the engine is simulated; the reconciler, backoff, wake-ups and MQTT link that drive it are
the real ones. Containers and images live in this process, pulls and starts take a configurable
time, pulls of images matching a pattern fail as a registry would (`manifest unknown`),
containers matching a pattern exit with a given code after a given time, and the engine's
event stream reports create/start/kill/die/stop/destroy as dockerd does. `DOCKER_HOST=sim://`
selects it (settings in the query string, see `SimConfig.from_url`); a contract test runs one
suite of engine behaviours against it and the real adapter, so the two cannot drift apart.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import queue
import threading
import time
from collections.abc import Callable, Iterator

from fleet_agent import reference
from fleet_agent.ports import Cancel, ContainerEvent, EngineError, PullProgress
from fleet_agent.runtime import Container, ExitDetails
from fleet_agent.simconfig import ExitRule, SimConfig
from fleet_agent.spec import LABEL_DEVICE, LABEL_MANAGED, LABEL_SERVICE, ContainerSpec

_CLOSED = ContainerEvent("", "", by_agent=False)  # ends a stream


class _Box:
    """One simulated container (mutable; guarded by the engine's lock)."""

    def __init__(self, spec: ContainerSpec) -> None:
        self.id = os.urandom(32).hex()  # 64 hex digits, as the engine's ids
        self.spec = spec
        self.state = "created"
        self.exit_code: int | None = None
        self.runs = 0  # bumped on each start, so an old exit timer cannot end a new run
        self.logs: list[str] = []

    def row(self) -> Container:
        return Container(
            id=self.id,
            name=self.spec.name,
            service=self.spec.labels.get(LABEL_SERVICE),
            config_hash=self.spec.labels.get("io.fleet-agent.config-hash"),
            image=self.spec.image,
            state=self.state,
            exit_code=self.exit_code if self.state == "exited" else None,
        )


class SimEngine:
    """Behaves as `fleet_agent.engine.Engine` does against dockerd 20.10."""

    def __init__(self, device_id: str, config: SimConfig | None = None) -> None:
        self.device_id = device_id
        self.config = config or SimConfig()
        self._lock = threading.Lock()
        self._boxes: dict[str, _Box] = {}
        self._images: set[str] = set(self.config.images)
        self._streams: list[queue.SimpleQueue[ContainerEvent]] = []
        self._own_stops: set[str] = set()
        self.calls = 0  # engine requests made, as the socket proxy counts them on dockerd

    # what the reconciler calls ------------------------------------------------------------

    def ping(self) -> None:
        self.calls += 1

    def describe(self) -> dict[str, str]:
        """As the Docker adapter's, for the device info topic."""
        return {"version": "simulated", "os": "linux", "arch": platform.machine()}

    def list_managed(self) -> list[Container]:
        self.calls += 1
        with self._lock:
            mine = [b for b in self._boxes.values() if self._managed(b.spec)]
            self._own_stops &= {b.id for b in mine}
            return [b.row() for b in mine]

    def _managed(self, spec: ContainerSpec) -> bool:
        labels = spec.labels
        return labels.get(LABEL_MANAGED) == "true" and labels.get(LABEL_DEVICE) == self.device_id

    def image_present(self, image: str) -> bool:
        self.calls += 1
        with self._lock:
            return not reference.parse(image).floating and image in self._images

    def ensure_image(
        self,
        image: str,
        cancel: Cancel,
        progress: Callable[[PullProgress], None] | None = None,  # not reported
    ) -> None:
        ref = reference.parse(image)
        if self.image_present(image):
            return
        self.calls += 1
        deadline = time.monotonic() + self.config.pull_delay
        while (left := deadline - time.monotonic()) > 0:
            if cancel.cancelled:
                raise EngineError("timeout", "pull abandoned")
            time.sleep(min(left, 0.05))
        if any(fnmatch.fnmatchcase(image, p) for p in self.config.fail_pulls):
            tag = f"{ref.repository}:{ref.pull_tag}"
            raise EngineError(
                "not_found", f"manifest for {tag} not found: manifest unknown: manifest unknown"
            )
        with self._lock:
            self._images.add(image)

    def create(self, spec: ContainerSpec) -> str:
        self.calls += 1
        with self._lock:
            if spec.image not in self._images:
                raise EngineError("not_found", f"No such image: {spec.image}")
            for box in self._boxes.values():
                if box.spec.name == spec.name:
                    raise EngineError(
                        "conflict",
                        f'Conflict. The container name "/{spec.name}" is already in use by '
                        f'container "{box.id}". You have to remove (or rename) that container '
                        "to be able to reuse that name.",
                    )
            box = _Box(spec)
            self._boxes[box.id] = box
            self._emit(box, "create")
        return box.id

    def start(self, container: str) -> None:
        self.calls += 1
        if self.config.start_delay:
            time.sleep(self.config.start_delay)
        with self._lock:
            box = self._box(container)
            if box.state == "running":
                return  # dockerd answers 304: already started
            box.state, box.exit_code, box.runs = "running", None, box.runs + 1
            self._emit(box, "start")
            rule = self._exit_rule(box.spec)
        if rule is not None:
            timer = threading.Timer(rule.after, self._exit, (box, box.runs, rule.code))
            timer.daemon = True
            timer.start()

    def stop(self, container: str) -> None:
        self.calls += 1
        self._own_stops.add(container)
        with self._lock:
            box = self._box(container)
            if box.state == "running":
                self._end(box, 143, ("kill", "die", "stop"))  # SIGTERM, as sh obeys it

    def remove(self, container: str) -> None:
        self.calls += 1
        self._own_stops.add(container)
        with self._lock:
            box = self._box(container)
            if box.state == "running":
                self._end(box, 137, ("kill", "die"))
            del self._boxes[box.id]
            self._emit(box, "destroy")

    def events(self) -> Iterator[ContainerEvent]:
        self.calls += 1
        stream: queue.SimpleQueue[ContainerEvent] = queue.SimpleQueue()
        with self._lock:
            self._streams.append(stream)
        try:
            yield ContainerEvent("connected", "", by_agent=False)
            while (event := stream.get()) is not _CLOSED:
                yield event
        finally:
            with self._lock:
                if stream in self._streams:
                    self._streams.remove(stream)

    def close_events(self) -> None:
        with self._lock:
            for stream in self._streams:
                stream.put(_CLOSED)
            self._streams.clear()

    def exit_details(self, container: str, tail: int = 5) -> ExitDetails:
        self.calls += 2  # inspect and logs
        with self._lock:
            box = self._box(container)
            code = box.exit_code if box.exit_code is not None else 0
            return ExitDetails(exit_code=code, log_tail=" | ".join(box.logs[-tail:]))

    # what a test or a person does to the simulated device --------------------------------

    def stop_by_hand(self, container: str) -> None:
        """`docker stop` typed by someone else than the agent."""
        with self._lock:
            box = self._box(container)
            if box.state == "running":
                self._end(box, 143, ("kill", "die", "stop"))

    # internals (the lock is held) ---------------------------------------------------------

    def _box(self, container: str) -> _Box:
        box = self._boxes.get(container)
        if box is None:
            matches = [b for b in self._boxes.values() if container in (b.spec.name, b.id[:12])]
            if not matches:
                raise EngineError("not_found", f"No such container: {container}")
            box = matches[0]
        return box

    def _exit_rule(self, spec: ContainerSpec) -> ExitRule | None:
        names = (spec.image, spec.labels.get(LABEL_SERVICE, spec.name))
        for rule in self.config.exits:
            if any(fnmatch.fnmatchcase(n, rule.pattern) for n in names):
                return rule
        return None

    def _exit(self, box: _Box, run: int, code: int) -> None:
        with self._lock:
            if box.runs == run and box.state == "running" and box.id in self._boxes:
                box.logs.append(f"simulated exit {code}")
                self._end(box, code, ("die",))

    def _end(self, box: _Box, code: int, actions: tuple[str, ...]) -> None:
        box.state, box.exit_code = "exited", code
        for action in actions:
            self._emit(box, action)

    def _emit(self, box: _Box, action: str) -> None:
        if not self._managed(box.spec):
            return
        by_agent = box.id in self._own_stops
        if action == "destroy":
            self._own_stops.discard(box.id)
        code = box.exit_code if action == "die" else None
        event = ContainerEvent(action, box.id, by_agent, code)
        for stream in self._streams:
            stream.put(event)
