"""A TCP proxy on loopback between the agent and its broker that can pass, delay, drop
(blackhole: connections stay open and carry nothing) or reset traffic, switched at run time."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

MODES = ("pass", "delay", "drop", "reset")


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        assert mode in MODES, mode
        self.mode, self.delay = mode, delay
        if mode == "reset":
            with self._lock:
                doomed, self._open = self._open, []
            for sock in doomed:
                _reset(sock)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.set_mode("reset")

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "reset":
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mode == "drop":
                    continue  # swallowed: the connection looks alive and carries nothing
                if self.mode == "delay":
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _reset(src)
            _reset(dst)
