"""A real Home Assistant for the discovery tests, provisioned before it starts.

`scripts/ha-venv.sh` installs Home Assistant once per machine into a cached venv. Each test gets
a fresh config dir holding: a minimal `configuration.yaml` (http on a free loopback port, api),
an owner with a long-lived access token (`.storage/auth`; the token is an HS256 JWT signed with
the refresh token's key, exactly what Home Assistant would hand out), onboarding marked done,
and the MQTT integration's config entry pointing at the test's broker (discovery on). It runs
with `--skip-pip`, so no run ever reaches PyPI.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.integration.brokers import free_port
from tests.integration.helpers import REPO, wait_for

NOW = "2025-01-01T00:00:00.000000+00:00"


def ha_venv() -> Path:
    out = subprocess.run(
        [str(REPO / "scripts" / "ha-venv.sh")], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token(refresh_id: str, jwt_key: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = _b64(json.dumps({"iss": refresh_id, "iat": now, "exp": now + 86400 * 365}).encode())
    signed = f"{header}.{claims}".encode()
    return f"{header}.{claims}." + _b64(hmac.new(jwt_key.encode(), signed, hashlib.sha256).digest())


def _store(key: str, data: Any, minor: int = 1) -> str:
    return json.dumps({"version": 1, "minor_version": minor, "key": key, "data": data})


class HomeAssistant:
    def __init__(self, workdir: Path, mqtt_port: int) -> None:
        self.config = workdir / "ha-config"
        self.port = free_port()
        self.mqtt_port = mqtt_port
        self.log = workdir / "ha.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def provision(self) -> None:
        storage = self.config / ".storage"
        storage.mkdir(parents=True, exist_ok=True)
        (self.config / "configuration.yaml").write_text(
            "homeassistant:\n  name: fleet-test\n  latitude: 0\n  longitude: 0\n"
            "  elevation: 0\n  time_zone: UTC\n  unit_system: metric\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\napi:\n"
        )
        user_id, refresh_id = uuid.uuid4().hex, uuid.uuid4().hex
        jwt_key = secrets.token_hex(64)
        user = {
            "id": user_id, "group_ids": ["system-admin"], "is_owner": True, "is_active": True,
            "name": "fleet-test", "system_generated": False, "local_only": False,
        }  # fmt: skip
        refresh = {
            "id": refresh_id, "user_id": user_id, "client_id": None, "client_name": "fleet-test",
            "client_icon": None, "token_type": "long_lived_access_token", "created_at": NOW,
            "access_token_expiration": 315360000.0, "token": secrets.token_hex(64),
            "jwt_key": jwt_key, "last_used_at": None, "last_used_ip": None,
            "credential_id": None, "version": None,
        }  # fmt: skip
        auth = {"users": [user], "groups": [], "credentials": [], "refresh_tokens": [refresh]}
        (storage / "auth").write_text(_store("auth", auth))
        onboarding = {"done": ["user", "core_config", "analytics", "integration"]}
        (storage / "onboarding").write_text(_store("onboarding", onboarding, minor=4))
        entry = {
            "entry_id": uuid.uuid4().hex, "version": 1, "minor_version": 2, "domain": "mqtt",
            "title": "127.0.0.1", "data": {"broker": "127.0.0.1", "port": self.mqtt_port},
            "options": {"discovery": True, "discovery_prefix": "homeassistant"},
            "pref_disable_new_entities": False, "pref_disable_polling": False,
            "source": "user", "unique_id": None, "disabled_by": None, "discovery_keys": {},
            "subentries": [], "created_at": NOW, "modified_at": NOW,
        }  # fmt: skip
        (storage / "core.config_entries").write_text(
            _store("core.config_entries", {"entries": [entry]}, minor=5)
        )
        self.token = access_token(refresh_id, jwt_key)

    def start(self, venv: Path) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(venv / "bin" / "hass"), "-c", str(self.config), "--skip-pip"],
                stdout=log,
                stderr=log,
            )
        wait_for(self._api_ready, timeout=300, interval=0.5, what="Home Assistant API")
        wait_for(self._mqtt_loaded, timeout=180, interval=0.5, what="MQTT integration loaded")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def _api_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Home Assistant exited; log: {self.log}")
        try:
            return bool(self.request("GET", "/api/"))
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _mqtt_loaded(self) -> bool:
        return "mqtt" in self.request("GET", "/api/config").get("components", [])

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def press(self, entity_id: str) -> None:
        self.request("POST", "/api/services/button/press", {"entity_id": entity_id})
