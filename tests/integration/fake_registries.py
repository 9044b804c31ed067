"""Registries on loopback that misbehave: one that accepts connections and never answers, one
that answers every request with 500 (pulls from them must cost only the service that uses them),
and a slow proxy in front of the real registry (pulls long enough to show their progress)."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from types import TracebackType

from tests.integration.brokers import free_port


class StalledRegistry:
    """Accepts TCP connections and holds them open without a byte in reply."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> StalledRegistry:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._server.close()


class _Fail(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *_: object) -> None:
        pass


class FailingRegistry:
    """An HTTP server on loopback that answers 500 Internal Server Error to everything."""

    def __init__(self) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Fail)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FailingRegistry:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Throttled(http.server.BaseHTTPRequestHandler):
    """Forwards to the real registry; blob bodies trickle at `rate` bytes a second."""

    protocol_version = "HTTP/1.1"
    upstream = ""
    rate = 1 << 20
    HOP = ("connection", "transfer-encoding", "keep-alive")

    def do_GET(self) -> None:
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", *self.HOP)}
        conn.request(self.command, self.path, headers=headers)
        reply = conn.getresponse()
        body = b"" if self.command == "HEAD" else reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in (*self.HOP, "content-length"):
                self.send_header(key, value)
        length = reply.getheader("Content-Length") if self.command == "HEAD" else str(len(body))
        self.send_header("Content-Length", length or "0")
        self.end_headers()
        conn.close()
        slow = "/blobs/" in self.path
        chunk = max(1, self.rate // 10)
        for start in range(0, len(body), chunk):
            self.wfile.write(body[start : start + chunk])
            self.wfile.flush()
            if slow:
                time.sleep(0.1)

    do_HEAD = do_GET

    def log_message(self, *_: object) -> None:
        pass


class ThrottledRegistry:
    """A loopback proxy in front of a real registry whose blob downloads are slow (a few
    seconds for a few MiB), so a pull shows its progress."""

    def __init__(self, upstream: str, rate: int = 1 << 20) -> None:
        handler = type("Handler", (_Throttled,), {"upstream": upstream, "rate": rate})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ThrottledRegistry:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
