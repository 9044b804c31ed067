"""Webhook delivery: alert transitions and the daily summary POSTed to each configured URL.

Reconciling and MQTT never wait on a receiver: `post` only files the body in each URL's outbox
and returns. One worker thread per URL delivers in order, with a timeout per request and a
capped exponential backoff while the receiver fails. While it is down the outbox keeps only the
latest body per key (one alert, or the summary), so memory stays bounded by the number of
alerts, and a receiver that comes back gets the latest state of each alert, oldest change
first. With a secret each request carries `X-Fleet-Agent-Signature: sha256=<hex HMAC>`.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable

import structlog

from fleet_agent import __version__
from fleet_agent.config import Settings, shown_url

log = structlog.get_logger(__name__)
SIGNATURE_HEADER = "X-Fleet-Agent-Signature"
MAX_PENDING = 1000  # keys per URL; far above a device's number of alerts
# A 4xx other than these says the receiver will never take this body: it is dropped.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Outbox:
    """Latest body per key, oldest first; a newer body for a key replaces the pending one."""

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self.limit = limit
        self._pending: OrderedDict[str, bytes] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, key: str, body: bytes) -> None:
        with self._cond:
            if key in self._pending:
                self._pending[key] = body  # keeps its place: the key's change order holds
            else:
                self._pending[key] = body
                while len(self._pending) > self.limit:
                    dropped, _ = self._pending.popitem(last=False)
                    log.warning("webhook outbox full, oldest dropped", key=dropped)
            self._cond.notify_all()

    def peek(self) -> tuple[str, bytes] | None:
        """The oldest pending entry, waiting for one; None once closed."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            return next(iter(self._pending.items()))

    def done(self, key: str, body: bytes) -> None:
        """Remove the entry unless a newer body for its key arrived meanwhile."""
        with self._cond:
            if self._pending.get(key) is body:
                del self._pending[key]

    def pending(self) -> dict[str, bytes]:
        with self._cond:
            return dict(self._pending)

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when closed meanwhile."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed, timeout=seconds)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


Sender = Callable[[str, bytes, dict[str, str], float], int]


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the HTTP status; raises OSError when no answer came."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Delivery:
    """One URL: its outbox and the worker thread that empties it."""

    def __init__(self, url: str, settings: Settings, send: Sender = http_post) -> None:
        self.url = url
        self.shown = shown_url(url)
        self.secret = settings.webhook_secret
        self.timeout = settings.webhook_timeout
        self.initial, self.cap = settings.webhook_retry_initial, settings.webhook_retry_max
        self.send = send
        self.outbox = Outbox()
        self.thread = threading.Thread(target=self._run, name="webhook", daemon=True)

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": f"fleet-agent/{__version__}"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        return headers

    def _attempt(self, key: str, body: bytes) -> bool:
        """True when the body is settled (delivered, or refused for good)."""
        try:
            code = self.send(self.url, body, self._headers(body), self.timeout)
        except (OSError, ValueError) as exc:  # refused, timed out, unreachable, bad answer
            log.warning("webhook delivery failed", url=self.shown, key=key, error=str(exc))
            return False
        if 200 <= code < 300:
            return True
        if 400 <= code < 500 and code not in RETRYABLE_4XX:
            log.error("webhook refused the body, dropped", url=self.shown, key=key, code=code)
            return True
        log.warning("webhook delivery failed", url=self.shown, key=key, code=code)
        return False

    def _run(self) -> None:
        delay = self.initial
        while (entry := self.outbox.peek()) is not None:
            key, body = entry
            try:
                settled = self._attempt(key, body)
            except Exception:  # never let the worker die: the next body would wait forever
                log.exception("webhook worker error", url=self.shown)
                settled = False
            if settled:
                self.outbox.done(key, body)
                delay = self.initial
                continue
            if self.outbox.wait(delay):
                return
            delay = min(delay * 2, self.cap)


class Webhooks:
    """Every configured URL, side by side: a slow receiver never delays another."""

    def __init__(self, settings: Settings, send: Sender = http_post) -> None:
        self.deliveries = [Delivery(url, settings, send) for url in settings.webhook_urls]

    def start(self) -> None:
        for delivery in self.deliveries:
            delivery.thread.start()

    def post(self, key: str, body: bytes) -> None:
        for delivery in self.deliveries:
            delivery.outbox.put(key, body)

    def stop(self, grace: float = 1.0) -> None:
        """Give pending bodies a short moment, then stop the workers."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(d.outbox.pending() for d in self.deliveries):
            time.sleep(0.05)
        for delivery in self.deliveries:
            delivery.outbox.close()
        for delivery in self.deliveries:  # a worker inside a hanging request is a daemon:
            if delivery.thread.is_alive():  # it is not waited for beyond a moment
                delivery.thread.join(timeout=0.5)
