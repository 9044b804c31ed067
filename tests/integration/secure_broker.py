"""The production Mosquitto of broker-config/production, on loopback ports, with test PKI.

The config, ACL and script are the shipped ones; the test changes only what a test must:
file paths (a temp dir instead of /etc/mosquitto/fleet), the two ports (free loopback ports
instead of 8883/8884), no persistence, and `user root` (the temp dir is root's own).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.brokers import PrivateMosquitto, free_port
from tests.integration.helpers import REPO, wait_for

PRODUCTION = REPO / "broker-config" / "production"
PKI = PRODUCTION / "fleet-pki.sh"


def pki(*args: str) -> None:
    subprocess.run([str(PKI), *args], check=True, capture_output=True)


class ProductionMosquitto(PrivateMosquitto):
    """`tls_port`: TLS with passwords; `mtls_port`: client certificates, CN as username."""

    def __init__(
        self, workdir: Path, names: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")
    ) -> None:
        super().__init__(workdir)
        self.dir = workdir / "fleet"
        self.dir.mkdir()
        self.tls_port, self.mtls_port = self.port, free_port()
        pki("ca", str(self.dir))
        pki("server", str(self.dir), "server", *names)
        for role in ("cloud", "monitor"):
            self.add_client(role)
            self.add_password(role)
        shutil.copy(PRODUCTION / "acl", self.dir / "acl")
        text = (PRODUCTION / "mosquitto.conf").read_text()
        text = text.replace("/etc/mosquitto/fleet", str(self.dir))
        text = text.replace("listener 8883\n", f"listener {self.tls_port} 127.0.0.1\n")
        text = text.replace("listener 8884\n", f"listener {self.mtls_port} 127.0.0.1\n")
        text = text.replace("persistence true\n", "persistence false\nuser root\n")
        self.config.write_text(text)

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.mtls_port}"

    def listeners(self) -> list[int]:
        return [self.tls_port, self.mtls_port]

    def add_client(self, name: str) -> dict[str, Path]:
        pki("client", str(self.dir), name)
        return self.certs(name)

    def certs(self, name: str) -> dict[str, Path]:
        return {
            "ca.crt": self.dir / "ca.crt",
            "client.crt": self.dir / f"{name}.crt",
            "client.key": self.dir / f"{name}.key",
        }

    def add_password(self, name: str) -> str:
        out = self.dir / f"{name}.password"
        pki("password", str(self.dir / "passwd"), name, str(out))
        return out.read_text().strip()

    def password(self, name: str) -> str:
        return (self.dir / f"{name}.password").read_text().strip()

    def reload(self) -> None:
        """Mosquitto reads a changed password file on SIGHUP."""
        assert self.proc is not None
        self.proc.send_signal(1)


class ProductionNats:
    """Three nodes from nats-node.conf, users from `fleet-pki.sh nats-accounts`."""

    def __init__(self, workdir: Path, devices: list[str]) -> None:
        self.dir = workdir
        pki("ca", str(workdir))
        pki("server", str(workdir), "server", "IP:127.0.0.1")
        for user in ("cloud", "monitor", *devices):
            pki("password", str(workdir / "passwd"), user, str(workdir / f"{user}.password"))
        pki("nats-accounts", str(workdir))
        self.nats_ports = [free_port() for _ in range(3)]
        self.route_ports = [free_port() for _ in range(3)]
        self.mqtt_ports = [free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []

    def password(self, user: str) -> str:
        return (self.dir / f"{user}.password").read_text().strip()

    def _config(self, index: int) -> Path:
        text = (PRODUCTION / "nats-node.conf").read_text()
        text = text.replace("$NATS_NAME", f"nats-{index}")
        text = text.replace("0.0.0.0:4222", f"127.0.0.1:{self.nats_ports[index]}")
        text = text.replace("0.0.0.0:6222", f"127.0.0.1:{self.route_ports[index]}")
        text = text.replace("0.0.0.0:8883", f"127.0.0.1:{self.mqtt_ports[index]}")
        text = text.replace("/var/lib/nats/jetstream", str(self.dir / f"js-{index}"))
        text = text.replace("/etc/nats/fleet", str(self.dir))
        for node, port in enumerate(self.route_ports, start=1):
            text = text.replace(f"nats-route://nats-{node}:6222", f"nats-route://127.0.0.1:{port}")
        path = self.dir / f"nats-{index}.conf"
        path.write_text(text)
        return path

    def start(self) -> None:
        for index in range(3):
            log = (self.dir / f"nats-{index}.log").open("ab")
            command = ["nats-server", "-c", str(self._config(index))]
            self.procs.append(subprocess.Popen(command, stdout=log, stderr=log))
        wait_for(self._ready, timeout=60, interval=0.5, what="NATS cluster with MQTT")

    def client(self, user: str, node: int = 0, **kw: Any) -> Client:
        password = kw.pop("password", None) or self.password(user)
        return Client(
            self.mqtt_ports[node],
            ca=self.dir / "ca.crt",
            username=user,
            password=password,
            v5=False,
            **kw,
        )

    def _ready(self) -> bool:
        """JetStream (which keeps retained messages) needs a moment after the ports open."""
        writer, reader = self.client("cloud", 0), self.client("cloud", 2)
        try:
            if not (writer.connected and reader.connected):
                return False
            writer.publish("fleet/ready/target", b"ok", retain=True)
            reader.subscribe("fleet/ready/target")
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not reader.received("fleet/ready/target"):
                time.sleep(0.1)
            return bool(reader.received("fleet/ready/target"))
        except Exception:
            return False
        finally:
            writer.close()
            reader.close()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Client:
    """A plain paho client that records what it receives and how each publish ended."""

    def __init__(
        self,
        port: int,
        *,
        ca: Path | None = None,
        certs: dict[str, Path] | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        host: str = "127.0.0.1",
        v5: bool = True,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connect_reason: Any = None
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        if certs is not None:
            self.client.tls_set(
                ca_certs=str(certs["ca.crt"]),
                certfile=str(certs["client.crt"]),
                keyfile=str(certs["client.key"]),
            )
        else:
            self.client.tls_set(ca_certs=str(ca) if ca else None)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self._acked: set[int] = set()
        self.dropped = False
        self.error: Exception | None = None
        try:
            self.client.connect(host, port)
        except Exception as exc:  # a TLS handshake refused: the test asserts on it
            self.error = exc
            return
        self.client.loop_start()
        wait_for(lambda: self.connect_reason is not None or self.dropped, timeout=30)

    @property
    def connected(self) -> bool:
        return self.error is None and not self.dropped and self.client.is_connected()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connect_reason = reason

    def _on_disconnect(self, *_: Any) -> None:
        self.dropped = True  # e.g. a TLS 1.3 server refusing the (missing) client certificate

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def subscribe(self, topic: str) -> None:
        """Subscribe and wait for the broker's answer (granted or not), so nothing published
        after this returns can race the subscription."""
        _, mid = self.client.subscribe(topic, qos=1)
        wait_for(lambda: mid in self._acked, timeout=30, what=f"SUBACK for {topic}")

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, *_: Any) -> None:
        self._acked.add(mid)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def received(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        if self.error is None:
            self.client.disconnect()
            self.client.loop_stop()
