"""What `fleet-agent demo` sets up and tears down: a real agent for the demo device, started in
the background (its own session, so it keeps running after the demo ends), and the cleanup that
leaves nothing behind: the device's containers removed by the agent itself (an empty target),
the agent stopped, every retained topic of the device cleared, its state folder deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.connection import Connection
from fleet_agent.operator.errors import FleetClientError

# Compressed timings, so the whole story plays in well under a minute.
AGENT_SETTINGS = {
    "FLEET_AGENT_BACKOFF_INITIAL": "2",
    "FLEET_AGENT_BACKOFF_MAX": "8",
    "FLEET_AGENT_MAX_RETRIES": "4",
    "FLEET_AGENT_RECONCILE_INTERVAL": "30",
    "FLEET_AGENT_STOP_TIMEOUT": "2",
    "FLEET_AGENT_LOG_FORMAT": "json",
}


class DemoAgent:
    """The demo's agent process, found again through its pidfile by a later `--cleanup`."""

    def __init__(self, device_id: str, conn: Connection, home: Path) -> None:
        self.device_id = device_id
        self.conn = conn
        self.home = home
        self.pidfile = home / "agent.pid"
        self.log = home / "agent.log"

    def pid(self) -> int | None:
        """The pid of our agent when it still runs."""
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if b"fleet_agent.cli" in cmdline and b"run" in cmdline else None

    def start(self) -> int:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **AGENT_SETTINGS,
            "FLEET_AGENT_DEVICE_ID": self.device_id,
            "FLEET_AGENT_MQTT_URL": self.conn.mqtt_url,
            "FLEET_AGENT_MQTT_PROTOCOL": self.conn.mqtt_protocol,
            "FLEET_AGENT_TOPIC_PREFIX": self.conn.topic_prefix,
            "FLEET_AGENT_STATE_DIR": str(self.home / "state"),
        }
        for key in ("USERNAME", "PASSWORD", "CA_FILE", "CERT_FILE", "KEY_FILE"):
            value = getattr(self.conn, f"mqtt_{key.lower()}")
            if value:
                env[f"FLEET_AGENT_MQTT_{key}"] = value
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fleet_agent.cli", "run"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # keeps running after the demo, and past its Ctrl-C
            )
        self.pidfile.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM our agent and wait until it is gone; True when one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # our own child: reap it
            time.sleep(0.1)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
        return True


def teardown(client: FleetClient, agent: DemoAgent, timeout: float = 60.0) -> list[str]:
    """Leave nothing behind; returns what was done, for the narration."""
    done = []
    device_id = agent.device_id
    if agent.pid() is not None:
        try:
            ack = client.apply(device_id, {"apps": {}}, timeout=timeout)
            if ack.accepted:
                client.wait_until(lambda d: not d[device_id].services, timeout=timeout)
                done.append("the agent removed the demo's containers (an empty target)")
        except FleetClientError as exc:
            done.append(f"could not empty the target: {exc}")
        agent.stop()
        done.append("stopped the agent")
        # its `offline` must be on the broker before we clear it
        client.wait_until(lambda d: d[device_id].availability == "offline", timeout=10)
    count = client.forget_device(device_id)
    done.append(f"cleared {count} retained topics of {device_id}")
    if agent.home.exists():
        shutil.rmtree(agent.home)
        done.append(f"removed {agent.home}")
    return done
