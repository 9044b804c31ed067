"""A private PostgreSQL server for the recorder tests: Debian's server binaries, a data
directory of its own under $FLEET_TEST_ROOT (or /tmp/fleet-test-pg), a free loopback port, and
the `postgres` user when we are root (the server refuses to run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.integration.brokers import free_port


def server_bin() -> Path | None:
    """The newest installed server's bin folder (/usr/lib/postgresql/N/bin), if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    def __init__(self) -> None:
        base = Path(os.environ.get("FLEET_TEST_ROOT") or "/tmp/fleet-test-pg")
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(base.stat().st_mode | 0o755)
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir=base))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.bin = server_bin()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql://fleet@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if self.bin is None:
            raise RuntimeError("no PostgreSQL server: run scripts/testenv.sh deps")
        if self._as:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "fleet")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        if self.data.exists():
            pg_ctl = str(self.bin / "pg_ctl") if self.bin else "pg_ctl"
            subprocess.run(
                [*self._as, pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,  # best effort: the folder goes either way
            )
        shutil.rmtree(self.dir, ignore_errors=True)
