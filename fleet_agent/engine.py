"""Docker adapter: the only module that speaks the Docker SDK.

It lists this device's containers with one API call, pulls with a deadline, creates, starts,
stops and removes, and turns every SDK or transport exception into an `EngineError` whose kind
the reconciler can act on and whose message is the engine's own (`manifest unknown`).
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import docker
import docker.auth
import docker.errors
import docker.types
import docker.utils
import msgspec
import requests.exceptions
import structlog
import urllib3.exceptions

from fleet_agent import engine_rows, masking, reference
from fleet_agent.ports import Cancel, ContainerEvent, EngineError, ErrorKind, PullProgress
from fleet_agent.pull_progress import PullTracker
from fleet_agent.runtime import Container, ExitDetails, ran_between
from fleet_agent.spec import (
    LABEL_DEVICE,
    LABEL_MANAGED,
    ContainerSpec,
)

log = structlog.get_logger(__name__)


class OwnStops:
    """Containers the agent itself stops or removes, so their events are not taken for a
    person's. A removed container's last events (`die`, `destroy`) may come after a list that
    no longer shows it: a container gone from the list is forgotten only `memory` s after."""

    def __init__(self, memory: float = 60.0) -> None:
        self.memory = memory
        self._marks: dict[str, float] = {}

    def __contains__(self, container: str) -> bool:
        return container in self._marks

    def add(self, container: str, now: float) -> None:
        self._marks[container] = now

    def discard(self, container: str) -> None:
        self._marks.pop(container, None)

    def keep_listed(self, listed: set[str], now: float) -> None:
        oldest = now - self.memory
        self._marks = {c: at for c, at in self._marks.items() if c in listed or at > oldest}


API_VERSION = "1.41"  # dockerd 20.10; newer engines still speak it, and no version probe is made
__all__ = ["ContainerEvent", "Engine", "EngineError", "ErrorKind"]


class EngineAddressError(ValueError):
    """DOCKER_HOST (or the TLS settings beside it) cannot be used at all: a start-up error."""


@contextmanager
def _translated(
    timeout_kind: ErrorKind = "timeout", timeout_message: str = "engine did not answer in time"
) -> Iterator[None]:
    """Convert whatever the SDK or the transport raises into an EngineError. A slow answer
    is a `timeout` of that call: only an engine that cannot be reached is `unavailable`."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise EngineError("not_found", _explain(exc)) from exc
    except docker.errors.APIError as exc:
        message = _explain(exc)
        kind: ErrorKind = "failed"
        if "invalid reference format" in message:
            kind = "invalid_reference"
        elif exc.status_code == 409:
            kind = "conflict"
        raise EngineError(kind, message) from exc
    except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
        # (a stream read by the SDK raises urllib3's own timeout, not requests')
        raise EngineError(timeout_kind, timeout_message) from exc
    except (
        requests.exceptions.ConnectionError,
        urllib3.exceptions.ProtocolError,
        ConnectionError,
        FileNotFoundError,
    ) as exc:
        raise EngineError("unavailable", f"engine unreachable: {exc}") from exc
    except (requests.exceptions.ChunkedEncodingError, http.client.HTTPException) as exc:
        # the engine went away in the middle of its answer (requests wraps urllib3's error)
        raise EngineError("unavailable", f"engine unreachable: {exc}") from exc
    except requests.exceptions.RequestException as exc:  # never anything but an EngineError
        raise EngineError("failed", str(exc) or type(exc).__name__) from exc
    except docker.errors.DockerException as exc:
        raise EngineError("failed", str(exc)) from exc


def _explain(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc)


class Engine:
    def __init__(
        self,
        device_id: str,
        base_url: str | None = None,
        timeout: float = 30.0,
        pull_timeout: float = 300.0,
        stop_timeout: int = 10,
    ) -> None:
        self.device_id = device_id
        try:  # no connection yet: only the address (DOCKER_HOST, DOCKER_TLS_*) is read here
            params: dict[str, Any] = docker.utils.kwargs_from_env()
            if base_url:
                params["base_url"] = base_url
            self.api = docker.APIClient(version=API_VERSION, timeout=timeout, **params)
            self._pull_api = docker.APIClient(version=API_VERSION, timeout=pull_timeout, **params)
            self._events_api = docker.APIClient(version=API_VERSION, timeout=None, **params)
            for api in (self.api, self._pull_api, self._events_api):
                # a local socket needs no proxy or .netrc: requests would read the environment
                # and look for ~/.netrc on every call (a third of a list call's CPU)
                api.trust_env = not api.base_url.startswith("http+docker://")
        except (docker.errors.DockerException, ValueError) as exc:  # urllib's port errors
            raise EngineAddressError(f"docker_host {base_url!r}: {exc}") from None
        self._events: Any = None
        self._own_stops = OwnStops()
        self.pull_timeout = pull_timeout
        self.stop_timeout = stop_timeout

    def ping(self) -> None:
        with _translated():
            self.api.ping()

    def describe(self) -> dict[str, str]:
        """The engine's version, OS and architecture (for the device info topic)."""
        with _translated():
            info = self.api.info()
        return {
            "version": str(info.get("ServerVersion", "")),
            "os": str(info.get("OSType", "")),
            "arch": str(info.get("Architecture", "")),
        }

    def list_managed(self) -> list[Container]:
        """This device's containers, with one call and no inspect (decoded by msgspec: only
        the fields we read)."""
        filters = {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_DEVICE}={self.device_id}"]}
        params = {"all": 1, "filters": docker.utils.convert_filters(filters)}
        with _translated():
            response = self.api._get(self.api._url("/containers/json"), params=params)
            self.api._raise_for_status(response)
            body = response.content
        try:
            rows = engine_rows.containers(body)
        except msgspec.DecodeError as exc:
            raise EngineError("failed", f"unreadable container list: {exc}") from None
        self._own_stops.keep_listed({row.id for row in rows}, time.monotonic())
        return rows

    def image_present(self, image: str) -> bool:
        """Whether a pinned image is on the device; a floating tag (`latest`) never counts, as
        it is pulled again whenever a container is created."""
        if reference.parse(image).floating:
            return False
        try:
            with _translated():
                self.api.inspect_image(image)
            return True
        except EngineError as exc:
            if exc.kind != "not_found":
                raise
            return False

    def ensure_image(
        self,
        image: str,
        cancel: Cancel,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        """Pull unless present; a floating tag (`latest`) is always pulled again. A cancel
        closes the pull's socket, so even a stalled registry lets go at once."""
        ref = reference.parse(image)
        if self.image_present(image):
            return
        try:
            self._pull(ref, cancel, progress)
        except EngineError as exc:
            if exc.kind != "unavailable":
                raise
            self.ping()  # the engine answers: it was the registry that stalled, not the engine
            raise EngineError("timeout", self._stalled) from exc

    def _pull(
        self,
        ref: reference.ImageRef,
        cancel: Cancel,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        """A pull may take as long as it keeps making progress (a big image on a slow link);
        `pull_timeout` bounds each wait for the engine's next word, as the kubelet's image
        pull progress deadline does. `progress` hears the layers' bytes combined, on change."""
        abandoned = EngineError("timeout", "pull abandoned")
        tracker = PullTracker()
        if cancel.cancelled:
            raise abandoned
        with _translated(timeout_kind="timeout", timeout_message=self._stalled):
            stream = self._pull_stream(ref)
            forget = cancel.on_cancel(lambda: _close_quietly(stream))
            try:
                for chunk in stream:
                    if "error" in chunk:
                        raise EngineError(_pull_error_kind(chunk["error"]), chunk["error"])
                    if cancel.cancelled:
                        raise abandoned
                    update = tracker.feed(chunk)
                    if update is not None and progress is not None:
                        progress(update)
            except Exception as exc:
                if cancel.cancelled and exc is not abandoned:  # its socket was shut on purpose
                    raise abandoned from exc
                raise
            finally:
                forget()

    def _pull_stream(self, ref: reference.ImageRef) -> Any:
        """`APIClient.pull` without its `timeout=None`: every read waits at most
        `pull_timeout`, so a registry that stalls (even before the engine sends a byte) ends
        the pull in time. It uses the SDK's request helpers, stable since docker-py 2."""
        api = self._pull_api
        registry, _ = docker.auth.resolve_repository_name(ref.repository)
        login = docker.auth.get_config_header(api, registry)  # from `docker login`, as pull()
        response = api._post(
            api._url("/images/create"),
            params={"fromImage": ref.repository, "tag": ref.pull_tag},
            headers={"X-Registry-Auth": login} if login else {},
            stream=True,
            timeout=self.pull_timeout,
        )
        api._raise_for_status(response)
        return docker.types.CancellableStream(api._stream_helper(response, decode=True), response)

    @property
    def _stalled(self) -> str:
        return f"pull stalled: no progress for {self.pull_timeout:g}s"

    def create(self, spec: ContainerSpec) -> str:
        bindings: dict[str, list[Any]] = {}
        for port in spec.ports:
            host: Any = port.host_port
            if port.host_ip is not None:
                host = (port.host_ip, port.host_port) if port.host_port else (port.host_ip,)
            bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(host)
        with _translated():
            for volume, volume_labels in spec.volumes.items():
                self._ensure_volume(volume, volume_labels)
            host_config = self.api.create_host_config(
                binds=spec.binds or None,
                port_bindings=bindings or None,
                network_mode=spec.network_mode,
                restart_policy={"Name": "no"},
                privileged=spec.privileged,
                devices=spec.devices or None,
                cap_add=spec.cap_add or None,
                read_only=spec.read_only or None,
                mem_limit=spec.mem_limit,
                nano_cpus=spec.nano_cpus,
            )
            created = self.api.create_container(
                image=spec.image,
                command=spec.command,
                entrypoint=spec.entrypoint,
                environment=spec.environment,
                user=spec.user,
                ports=[(p.container_port, p.protocol) for p in spec.ports] or None,
                labels=spec.labels,
                name=spec.name,
                host_config=host_config,
                detach=True,
            )
        return str(created["Id"])

    def _ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create a device's named volume with our labels (the engine would create it bare)."""
        try:
            self.api.inspect_volume(name)
        except docker.errors.NotFound:
            self.api.create_volume(name, labels=labels)

    def start(self, container: str) -> None:
        with _translated():
            self.api.start(container)

    def stop(self, container: str) -> None:
        self._own_stops.add(container, time.monotonic())
        with _translated():
            self.api.stop(container, timeout=self.stop_timeout)

    def remove(self, container: str) -> None:
        self._own_stops.add(container, time.monotonic())
        with _translated():
            self.api.remove_container(container, v=True, force=True)

    def events(self) -> Iterator[ContainerEvent]:
        """Follow this device's container events until the stream breaks (engine gone)."""
        filters = {
            "type": "container",
            "label": [f"{LABEL_MANAGED}=true", f"{LABEL_DEVICE}={self.device_id}"],
        }
        with _translated():
            self._events = self._events_api.events(decode=True, filters=filters)
            yield ContainerEvent("connected", "", by_agent=False)
            for raw in self._events:
                actor = raw.get("Actor") or {}
                container = str(actor.get("ID") or raw.get("id", ""))
                action = str(raw.get("Action") or raw.get("status", "")).split(":")[0]
                by_agent = container in self._own_stops
                if action == "destroy":
                    self._own_stops.discard(container)
                yield ContainerEvent(action, container, by_agent, _exit_code(action, actor))

    def close_events(self) -> None:
        stream, self._events = self._events, None
        if stream is not None:
            stream.close()

    def exit_details(self, container: str, tail: int = 5) -> ExitDetails:
        """Why a container stopped: exit code, OOM kill, and its last lines of output."""
        with _translated():
            state = self.api.inspect_container(container)["State"]
            raw = self.api.logs(container, stdout=True, stderr=True, tail=tail)
        lines = raw.decode(errors="replace").strip().splitlines()
        return ExitDetails(
            exit_code=int(state.get("ExitCode", 0)),
            oom_killed=bool(state.get("OOMKilled", False)),
            log_tail=masking.TAIL_JOIN.join(line.strip() for line in lines[-tail:]),
            ran_for=ran_between(state.get("StartedAt"), state.get("FinishedAt")),
        )


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # closing is best effort; the pull thread reports back anyway
        log.warning("could not close a pull stream", exc_info=True)


def _exit_code(action: str, actor: dict[str, Any]) -> int | None:
    """A `die` event's exit code (dockerd puts it in the event's attributes)."""
    code = (actor.get("Attributes") or {}).get("exitCode") if action == "die" else None
    try:
        return None if code is None else int(code)
    except (TypeError, ValueError):
        return None


def _pull_error_kind(message: str) -> ErrorKind:
    if "invalid reference format" in message:
        return "invalid_reference"
    return "not_found" if "not found" in message or "manifest unknown" in message else "failed"
