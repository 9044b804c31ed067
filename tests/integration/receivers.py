"""A real HTTP webhook receiver on loopback that a test can take down (hanging) and bring back."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Records every POST it answers with 200. While `down`, requests hang (the sender's
    timeout is what ends them) and are then answered 503, unrecorded."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._up.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not receiver._up.is_set():
                    receiver._up.wait(30)
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def down(self) -> None:
        self._up.clear()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._up.set()
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, event: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            docs = [json.loads(body) for _, body in self.requests]
        return [d for d in docs if event is None or d.get("event") == event]

    def alerts(self, service: str) -> list[dict[str, Any]]:
        return [d for d in self.bodies() if d.get("service") == service]

    def signatures_valid(self, secret: str) -> bool:
        with self._lock:
            pairs = list(self.requests)
        for headers, body in pairs:
            want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            got = headers.get("X-Fleet-Agent-Signature", "")
            if not hmac.compare_digest(want, got):
                return False
        return bool(pairs)
