"""A real Node-RED running the example flows of examples/node-red, headless on loopback.

`scripts/node-red.sh` installs it with `npm ci` from the committed lock file (once). Each
test gets its own user dir holding both example flows merged into one flows file (they share
their broker node), the broker and webhook taken from the environment as in the docs.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.brokers import free_port
from tests.integration.helpers import REPO, wait_for

EXAMPLES = REPO / "examples" / "node-red"
FLOWS = ("fleet-flow.json", "dashboard-flow.json")


def merged_flows() -> list[dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = {}
    for name in FLOWS:
        for node in json.loads((EXAMPLES / name).read_text()):
            nodes.setdefault(node["id"], node)
    return list(nodes.values())


class NodeRed:
    def __init__(self, workdir: Path, mqtt_port: int, webhook_url: str | None = None) -> None:
        self.user_dir = workdir / "node-red"
        self.port = free_port()
        self.log = workdir / "node-red.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(workdir),
            "NODE_RED_PORT": str(self.port),
            "FLEET_MQTT_HOST": "127.0.0.1",
            "FLEET_MQTT_PORT": str(mqtt_port),
        }
        if webhook_url:
            self.env["FLEET_WEBHOOK_URL"] = webhook_url
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.user_dir.mkdir(parents=True, exist_ok=True)
        (self.user_dir / "flows.json").write_text(json.dumps(merged_flows()))
        script = str(REPO / "scripts" / "node-red.sh")
        subprocess.run([script], check=True, capture_output=True)  # install first, untimed
        settings = str(EXAMPLES / "settings.js")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [script, "run", "-u", str(self.user_dir), "-s", settings],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        wait_for(self._ready, timeout=120, interval=0.3, what="Node-RED serving /fleet")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Node-RED exited; log: {self.log}")
        try:
            self.get("/fleet")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def row(self, device: str, service: str) -> dict[str, Any] | None:
        for row in self.get("/fleet")["services"]:
            if row["device"] == device and row["service"] == service:
                found: dict[str, Any] = row
                return found
        return None
