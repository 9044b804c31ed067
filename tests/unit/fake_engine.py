"""An honest small fake of the engine (`EngineAPI`) and clock for the reconciler's scenarios.

It keeps containers and images in memory and can inject every failure the agent must handle:
an engine that is down, a list call that is too slow, pulls that fail or stall until they are
cancelled, a stop that hangs, an inspect that hangs (of an image or of why a container exited),
a container that crashes whenever it starts.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

from msgspec.structs import replace

from fleet_agent import reference
from fleet_agent.ports import Cancel, ContainerEvent, EngineError, PullProgress
from fleet_agent.runtime import Container, ExitDetails
from fleet_agent.spec import LABEL_CONFIG_HASH, LABEL_SERVICE, ContainerSpec

HANG_LIMIT = 5.0  # a hung call gives up after this long, as the engine's API timeout would


class FakeClock:
    """Monotonic and wall time, moved by the test; `step_wall` is NTP stepping the clock."""

    def __init__(self, mono: float = 1000.0, wall: float = 1761300900.0) -> None:
        self.mono, self.wall_time = mono, wall

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall_time

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall_time += seconds

    def step_wall(self, seconds: float) -> None:
        self.wall_time += seconds


class FakeEngine:
    def __init__(self, images: set[str] | None = None) -> None:
        self.containers: dict[str, Container] = {}
        self.images: set[str] = set(images or ())
        self.registry: set[str] = set()  # what a pull can fetch
        self.down = False  # every call: engine unreachable
        self.slow_list = False  # list_managed: the engine answers too late
        self.crashing: dict[str, int] = {}  # service -> exit code right after each start
        self.stalling: set[str] = set()  # images whose pull hangs until cancelled
        self.hung_stops: dict[str, threading.Event] = {}  # service -> released when set
        self.hung_inspects: dict[str, threading.Event] = {}  # image or container -> released
        self.hanging: set[str] = set()  # the images and containers whose inspect hangs now
        self.pulls: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _check(self, call: str, subject: str) -> None:
        with self._lock:
            self.calls.append((call, subject))
        if self.down:
            raise EngineError("unavailable", "engine unreachable: connection refused")

    def ping(self) -> None:
        self._check("ping", "")

    def list_managed(self) -> list[Container]:
        self._check("list", "")
        if self.slow_list:
            raise EngineError("timeout", "engine did not answer in time")
        with self._lock:
            return sorted(self.containers.values(), key=lambda c: c.id)

    def _hang(self, subject: str) -> None:
        release = self.hung_inspects.get(subject)
        if release is None:
            return
        with self._lock:
            self.hanging.add(subject)
        try:
            if not release.wait(HANG_LIMIT):
                raise EngineError("timeout", "engine did not answer in time")
        finally:
            with self._lock:
                self.hanging.discard(subject)

    def image_present(self, image: str) -> bool:
        self._check("inspect", image)
        self._hang(image)
        with self._lock:
            return not reference.parse(image).floating and image in self.images

    def ensure_image(
        self, image: str, cancel: Cancel, progress: Callable[[PullProgress], None] | None = None
    ) -> None:
        self._check("pull", image)
        self.pulls.append(image)
        if image in self.stalling:
            ended = threading.Event()
            cancel.on_cancel(ended.set)
            ended.wait(30)
            raise EngineError("timeout", "pull abandoned")
        if image not in self.registry and image not in self.images:
            raise EngineError("not_found", f"manifest for {image} not found: manifest unknown")
        self.images.add(image)

    def create(self, spec: ContainerSpec) -> str:
        self._check("create", spec.name)
        if spec.image not in self.images:
            raise EngineError("not_found", f"No such image: {spec.image}")
        with self._lock:
            if any(c.name == spec.name for c in self.containers.values()):
                raise EngineError("conflict", f"name {spec.name} is already in use")
            cid = f"c{next(self._ids):03d}"
            self.containers[cid] = Container(
                cid,
                spec.name,
                spec.labels.get(LABEL_SERVICE),
                spec.labels.get(LABEL_CONFIG_HASH),
                spec.image,
                "created",
            )
        return cid

    def _set(self, container: str, **fields: object) -> Container:
        with self._lock:
            found = next((c for c in self.containers.values() if container in (c.id, c.name)), None)
            if found is None:
                raise EngineError("not_found", f"No such container: {container}")
            self.containers[found.id] = replace(found, **fields)
            return self.containers[found.id]

    def start(self, container: str) -> None:
        self._check("start", container)
        started = self._set(container, state="running", exit_code=None)
        code = self.crashing.get(started.service or "")
        if code is not None:
            self._set(started.id, state="exited", exit_code=code)

    def stop(self, container: str) -> None:
        self._check("stop", container)
        service = next((c.service for c in self.containers.values() if c.id == container), None)
        hung = self.hung_stops.get(service or "")
        if hung is not None:
            hung.wait(30)
        self._set(container, state="exited", exit_code=0)

    def remove(self, container: str) -> None:
        self._check("remove", container)
        with self._lock:
            self.containers.pop(container, None)

    def exit_details(self, container: str) -> ExitDetails:
        self._check("inspect", container)
        self._hang(container)
        code = self.containers[container].exit_code
        return ExitDetails(exit_code=-1 if code is None else code, log_tail="boom")

    def events(self) -> Iterator[ContainerEvent]:
        yield ContainerEvent("connected", "", by_agent=False)

    def close_events(self) -> None:
        pass

    # what happens to containers outside the agent ------------------------------------------

    def of(self, service: str) -> Container:
        return next(c for c in self.containers.values() if c.service == service)

    def exit(self, service: str, code: int) -> Container:
        """The service's container exits by itself (or is stopped: the caller says so)."""
        return self._set(self.of(service).id, state="exited", exit_code=code)
