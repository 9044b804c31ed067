"""A counting proxy on the engine's unix socket: every Docker API request the agent makes.

    proxy = SocketProxy("/run/docker.sock", "/tmp/counted.sock"); proxy.start()
    ... point DOCKER_HOST at unix:///tmp/counted.sock ...
    proxy.requests  # [(time, "GET", "/v1.41/containers/json?..."), ...]

Bytes are relayed unchanged both ways, one thread per direction; requests are recognised by
their HTTP request line in the client's stream (the agent's bodies are JSON, never one).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time

_REQUEST = re.compile(rb"(GET|POST|PUT|DELETE|HEAD) (/\S*) HTTP/1\.[01]\r\n")


class SocketProxy:
    def __init__(self, upstream: str, listen: str) -> None:
        self.upstream = upstream.removeprefix("unix://")
        self.listen = listen
        self.requests: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    @property
    def url(self) -> str:
        return f"unix://{self.listen}"

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.listen)
        self._server.bind(self.listen)
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def close(self) -> None:
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.listen)

    def count(self, since: float = 0.0, path: str = "") -> int:
        with self._lock:
            return sum(1 for at, _, p in self.requests if at >= since and path in p)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._relay, args=(client, upstream, True), daemon=True).start()
            threading.Thread(
                target=self._relay, args=(upstream, client, False), daemon=True
            ).start()

    def _relay(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    now = time.time()
                    with self._lock:
                        self.requests += [
                            (now, m[1].decode(), m[2].decode()) for m in _REQUEST.finditer(data)
                        ]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
