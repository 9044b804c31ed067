"""The dashboard's HTTP side: the page, JSON endpoints, the event stream and Force Retry.

Routes (JSON unless said otherwise):
- `GET /` the page (HTML; the login form when a token is needed), `POST /login` the form
- `GET /api/fleet` every device's row; `GET /api/devices/{d}/services/{s}` the drawer's detail
- `GET /api/events` Server-Sent Events: a `snapshot`, then coalesced `update`s and a `status`
  heartbeat; browsers reconnect by themselves (`retry: 1000`) and get a fresh snapshot
- `POST /api/devices/{d}/retry` `{"service": "x"}` or `{}`: `cmd/retry` and its result
- `GET /api/alerts/past?limit=N&before=CURSOR&q=WORDS` (with `--db` only): the fleet's cleared
  alerts from the recorder's database, newest first, a page at a time
Every handler goes through the `Guard`; the fleet comes from the operator's `FleetClient` (or
anything with the same few methods).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from importlib import resources
from typing import Any, Protocol
from urllib.parse import parse_qs

import msgspec
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse as Streaming
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from fleet_agent.model import iso
from fleet_agent.operator.dashboard import view
from fleet_agent.operator.dashboard.guard import COOKIE, Guard
from fleet_agent.operator.dashboard.hub import Hub, Subscriber
from fleet_agent.operator.errors import FleetClientError, WaitTimeout
from fleet_agent.operator.fleet import Device
from fleet_agent.operator.wire import CommandResult
from fleet_agent.validate import NAME_PATTERN

Handler = Callable[[Request], Awaitable[Response]]
# (device, service) -> (history newest first, past alerts): the recorder's database (`--db`)
Recorded = Callable[[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]]
# (limit, cursor or None, words) -> (cleared alerts newest first, next cursor or None)
PastAlerts = Callable[[int, str | None, str], tuple[list[dict[str, Any]], str | None]]
log = structlog.get_logger(__name__)
PACKAGE = "fleet_agent.operator.dashboard"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
MAX_BODY = 4096
UNREADABLE = "the recorder's database cannot be read"


class Source(Protocol):
    """What the dashboard needs of the fleet (the operator's `FleetClient` has it)."""

    @property
    def connected(self) -> bool: ...

    def devices(self) -> dict[str, Device]: ...

    def device(self, device_id: str) -> Device | None: ...

    def retry(
        self, device_id: str, service: str | None = None, timeout: float = 10.0
    ) -> CommandResult: ...


class Timing(msgspec.Struct, frozen=True):
    coalesce: float = 0.25  # seconds an update waits for more changes
    heartbeat: float = 5.0  # seconds between `status` events
    command_timeout: float = 10.0


def _static(name: str) -> str:
    return (resources.files(PACKAGE) / "static" / name).read_text(encoding="utf-8")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(doc), status, media_type="application/json")


def _sse(kind: str, doc: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + msgspec.json.encode(doc) + b"\n\n"


class Dashboard:
    def __init__(
        self,
        source: Source,
        guard: Guard,
        hub: Hub,
        timing: Timing,
        recorded: Recorded | None = None,
        past: PastAlerts | None = None,
    ) -> None:
        self.source, self.guard, self.hub, self.timing = source, guard, hub, timing
        self.recorded, self.past = recorded, past
        page = _static("index.html").replace("__PAGE_TOKEN__", html.escape(guard.page_token))
        page = page.replace("__RECORDER__", "on" if past is not None else "")
        self.page, self.login_page = page, _static("login.html")

    # documents ----------------------------------------------------------------------------

    def rows(self, ids: Iterable[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        devices = self.source.devices()
        wanted = sorted(devices) if ids is None else sorted(ids)
        rows = [view.device_row(devices[i]) for i in wanted if i in devices]
        return rows, [i for i in wanted if i not in devices]

    def _frame(self, **doc: Any) -> dict[str, Any]:
        return {"now": iso(time.time()), "connected": self.source.connected, **doc}

    # handlers -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        if not self.guard.may_look(request.headers, request.cookies):
            return HTMLResponse(self.login_page)
        return HTMLResponse(self.page, headers={"Cache-Control": "no-store"})

    async def login(self, request: Request) -> Response:
        body = (await request.body())[:MAX_BODY].decode("utf-8", "replace")
        offered = parse_qs(body).get("token", [""])[0]
        if not self.guard.login(offered):
            page = self.login_page.replace("<!--error-->", "<p class=error>Wrong token.</p>")
            return HTMLResponse(page, 401)
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, offered.strip(), httponly=True, samesite="strict")
        return response

    async def fleet(self, _request: Request) -> Response:
        rows, _ = self.rows()
        return _json(self._frame(devices=rows))

    async def detail(self, request: Request) -> Response:
        device = self.source.device(request.path_params["device"])
        detail = view.service_detail(device, request.path_params["service"]) if device else None
        if detail is None:
            return _json({"error": "no such device or service"}, 404)
        if self.recorded is not None:
            detail = await self._with_recorded(detail)
        return _json(self._frame(**detail))

    async def _with_recorded(self, detail: dict[str, Any]) -> dict[str, Any]:
        """The recorder's longer history and past alerts (`--db`); the retained ones if the
        database cannot answer."""
        assert self.recorded is not None
        try:
            history, past = await run_in_threadpool(
                self.recorded, detail["device"], detail["status"]["serviceName"]
            )
        except Exception as exc:  # a database that is down must not break the drawer
            log.warning("recorder database unreadable", error=str(exc)[:200])
            return {**detail, "recorderError": f"{UNREADABLE}: {_first_line(exc)}"}
        return {**detail, "history": history or detail["history"], "pastAlerts": past}

    async def past_alerts(self, request: Request) -> Response:
        assert self.past is not None
        params = request.query_params
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            return _json({"error": "limit must be a whole number"}, 400)
        cursor, words = params.get("before") or None, params.get("q", "")[:200]
        try:
            found, more = await run_in_threadpool(self.past, limit, cursor, words)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        except Exception as exc:  # a database that is down: say so, the page shows it
            log.warning("recorder database unreadable", error=str(exc)[:200])
            return _json(self._frame(error=f"{UNREADABLE}: {_first_line(exc)}"), 503)
        return _json(self._frame(alerts=found, more=more))

    async def events(self, _request: Request) -> Response:
        subscriber = self.hub.subscribe()
        if subscriber is None:
            return _json({"error": "too many open event streams"}, 503)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Streaming(self._stream(subscriber), media_type="text/event-stream", headers=headers)

    async def _stream(self, subscriber: Subscriber) -> AsyncIterator[bytes]:
        try:
            rows, _ = self.rows()
            yield b"retry: 1000\n\n" + _sse("snapshot", self._frame(devices=rows))
            while not subscriber.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(subscriber.wake.wait(), self.timing.heartbeat)
                if subscriber.closed:
                    break
                if not subscriber.wake.is_set():
                    yield _sse("status", self._frame())
                    continue
                await asyncio.sleep(self.timing.coalesce)  # let more changes join this update
                rows, removed = self.rows(subscriber.take())
                yield _sse("update", self._frame(devices=rows, removed=removed))
        finally:
            self.hub.unsubscribe(subscriber)

    async def retry(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _json({"error": "request too large"}, 413)
        try:
            doc = msgspec.json.decode(body or b"{}")
        except msgspec.DecodeError:
            return _json({"error": "the body is not JSON"}, 400)
        service = doc.get("service") if isinstance(doc, dict) else "?"
        named = isinstance(service, str) and NAME_PATTERN.fullmatch(service)
        if service is not None and not named:
            return _json({"error": 'send {"service": "<name>"} or {}'}, 400)
        device_id = request.path_params["device"]
        device = self.source.device(device_id)
        if device is None or (service is not None and service not in device.services):
            return _json({"error": "no such device or service"}, 404)
        return await self._send_retry(device_id, service)

    async def _send_retry(self, device_id: str, service: str | None) -> Response:
        timeout = self.timing.command_timeout
        try:
            result = await asyncio.to_thread(self.source.retry, device_id, service, timeout)
        except WaitTimeout as exc:
            return _json({"error": str(exc)}, 504)
        except FleetClientError as exc:
            return _json({"error": str(exc)}, 502)
        return _json(self._frame(result=msgspec.to_builtins(result)))

    # wiring -------------------------------------------------------------------------------

    def guarded(self, handler: Handler, act: bool = False, page: bool = False) -> Handler:
        async def run(request: Request) -> Response:
            if not self.guard.host_allowed(request.headers.get("host", "")):
                return _json({"error": "this dashboard answers on loopback names only"}, 403)
            names = request.path_params.values()
            if any(not NAME_PATTERN.fullmatch(str(name)) for name in names):
                return _json({"error": "no such device or service"}, 404)
            headers, cookies = request.headers, request.cookies
            if act and not self.guard.may_act(headers, cookies):
                return _json({"error": "a POST must carry the dashboard token"}, 403)
            if not page and not self.guard.may_look(headers, cookies):
                return _json({"error": "log in first, or send the token"}, 401)
            response = await handler(request)
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            return response

        return run


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def create_app(
    source: Source,
    guard: Guard,
    hub: Hub | None = None,
    timing: Timing | None = None,
    recorded: Recorded | None = None,
    past: PastAlerts | None = None,
) -> Starlette:
    """`recorded(device, service)`: the recorder's history and past alerts for the drawer;
    `past(limit, cursor, words)`: the fleet's cleared alerts for the alerts panel (--db)."""
    hub = hub or Hub()
    board = Dashboard(source, guard, hub, timing or Timing(), recorded, past)
    g = board.guarded
    routes: list[BaseRoute] = [
        Route("/", g(board.index, page=True)),
        Route("/login", g(board.login, page=True), methods=["POST"]),
        Route("/api/fleet", g(board.fleet)),
        Route("/api/events", g(board.events)),
        Route("/api/devices/{device}/services/{service}", g(board.detail)),
        Route("/api/devices/{device}/retry", g(board.retry, act=True), methods=["POST"]),
    ]
    if past is not None:
        routes.append(Route("/api/alerts/past", g(board.past_alerts)))
    routes += [
        Mount("/static", StaticFiles(packages=[(PACKAGE, "static")]), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        yield
        hub.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = board
    return app


__all__ = ["Dashboard", "PastAlerts", "Recorded", "Source", "Timing", "create_app"]
