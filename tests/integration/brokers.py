"""Brokers a test can own: a private Mosquitto it may stop and restart, a NATS cluster."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.integration.helpers import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateMosquitto:
    """A Mosquitto on its own loopback port, without persistence, that a test may bounce."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\n"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.config)], stdout=log, stderr=log
            )
        wait_for(self._listening, timeout=10, what=f"mosquitto listening on {self.listeners()}")

    def listeners(self) -> list[int]:
        """Every port this broker's config listens on; start() waits for all of them."""
        return [self.port]

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited ({self.proc.returncode}); see {self.log}")
        return all(_answers(port) for port in self.listeners())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a frozen broker cannot end otherwise
            self.proc.terminate()
            self.proc.wait(10)
        wait_for(lambda: not _answers(self.port), timeout=10, what="mosquitto gone")

    def kill(self) -> None:
        """SIGKILL: no clean goodbye to any client."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the connections stay open but carry nothing (a hung broker)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


# As in broker-config/production/nats-node.conf: the agent's sessions are clean (its
# subscriptions are made again at every connect), so the JetStream consumers behind its QoS 1
# subscriptions need neither three replicas nor a disk: created on one node, in memory, a new
# session costs no Raft round per subscription. Streams (retained targets) keep three replicas.
MQTT_AT_SCALE = "consumer_replicas: 1, consumer_memory_storage: true"


class NatsCluster:
    """Three nats-server nodes on loopback with JetStream and MQTT listeners (MQTT 3.1.1)."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.cluster_ports = [free_port() for _ in range(size)]
        self.mqtt_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes]] = []

    def _config(self, index: int) -> Path:
        routes = ", ".join(
            f"nats-route://127.0.0.1:{port}"
            for i, port in enumerate(self.cluster_ports)
            if i != index
        )
        store = self.workdir / f"js-{index}"
        path = self.workdir / f"nats-{index}.conf"
        path.write_text(
            f'server_name: "n{index}"\nlisten: "127.0.0.1:{free_port()}"\n'
            f'jetstream {{ store_dir: "{store}" }}\n'
            f'cluster {{ name: "fleet", listen: "127.0.0.1:{self.cluster_ports[index]}", '
            f"routes: [{routes}] }}\n"
            f'mqtt {{ listen: "127.0.0.1:{self.mqtt_ports[index]}", {MQTT_AT_SCALE} }}\n'
        )
        return path

    def start(self) -> None:
        for index in range(len(self.cluster_ports)):
            log = (self.workdir / f"nats-{index}.log").open("ab")
            self.procs.append(
                subprocess.Popen(
                    ["nats-server", "-c", str(self._config(index))], stdout=log, stderr=log
                )
            )
        for port in self.mqtt_ports:
            wait_for(functools.partial(_answers, port), timeout=60, what=f"NATS MQTT :{port}")
        wait_for(self._retained_crosses_the_cluster, timeout=60, interval=0.5, what="NATS ready")

    def _retained_crosses_the_cluster(self) -> bool:
        """JetStream (which keeps retained messages) needs a moment after the ports open."""
        first, last = self.mqtt_ports[0], self.mqtt_ports[-1]
        pub = ["mosquitto_pub", "-p", str(first), "-V", "mqttv311", "-q", "1", "-r"]
        sub = ["mosquitto_sub", "-p", str(last), "-V", "mqttv311", "-q", "1", "-C", "1", "-W", "2"]
        # The clients' own -W does not bound a connection the broker never answers: a probe
        # that hangs is a "not yet", never a suite that hangs.
        try:
            sent = subprocess.run(
                [*pub, "-t", "ready/check", "-m", "ok"],
                check=False,
                capture_output=True,
                timeout=10,
            )
            got = subprocess.run(
                [*sub, "-t", "ready/check"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
        except subprocess.TimeoutExpired:
            return False
        return sent.returncode == 0 and got.stdout.strip() == "ok"

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        time.sleep(0.1)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=fleet-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "")):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        (folder / f"{name}.ext").write_text(extra + "\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            f"{name}.crt",
            "-extfile",
            f"{name}.ext",
        )
    return {
        name: folder / name
        for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    }


class TlsMosquitto(PrivateMosquitto):
    """A Mosquitto that speaks only TLS and requires a client certificate (mutual TLS)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.certs = make_certificates(workdir / "certs")
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nuser root\n"  # test certs live in root's private tmp dir
            f"cafile {self.certs['ca.crt']}\ncertfile {self.certs['server.crt']}\n"
            f"keyfile {self.certs['server.key']}\nrequire_certificate true\n"
        )

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"
