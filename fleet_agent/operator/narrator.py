"""How the demo speaks: numbered steps, marked lines, and waits with a live line (a ticking
countdown) on a terminal. Without a terminal the same story is plain text, one line per fact,
no colours and no redrawing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.live import Live
from rich.text import Text

from fleet_agent.operator.client import FleetClient
from fleet_agent.operator.errors import WaitTimeout
from fleet_agent.operator.fleet import Device

TICK = 0.1
Line = Callable[[Device | None, float], str]


class Narrator:
    def __init__(self, out: Console, steps: int) -> None:
        self.out = out
        self.steps = steps
        self.number = 0
        fancy = out.is_terminal and (out.encoding or "").lower().startswith("utf")
        self.marks = (
            {"ok": "✓", "bad": "✗", "warn": "!", "info": " ", "cmd": "$"}
            if fancy
            else {"ok": "ok", "bad": "!!", "warn": "!", "info": " ", "cmd": "$"}
        )

    def _line(self, mark: str, text: str, style: str | None = None) -> None:
        line = Text(f"   {self.marks[mark]:>2} ")
        line.append(text, style=style)
        self.out.print(line, highlight=False, soft_wrap=True)

    def title(self, text: str) -> None:
        self.out.print(Text(text, style="bold"), highlight=False)

    def step(self, text: str) -> None:
        self.number += 1
        self.out.print()
        head = Text(f"[{self.number}/{self.steps}] ", style="bold cyan")
        head.append(text, style="bold")
        self.out.print(head, highlight=False, soft_wrap=True)

    def info(self, text: str) -> None:
        self._line("info", text, "dim" if self.out.is_terminal else None)

    def ok(self, text: str) -> None:
        self._line("ok", text, "green")

    def bad(self, text: str) -> None:
        self._line("bad", text, "red")

    def warn(self, text: str) -> None:
        self._line("warn", text, "yellow")

    def command(self, text: str) -> None:
        self._line("cmd", text, "bold")

    def wait(
        self,
        client: FleetClient,
        device_id: str,
        until: Callable[[Device | None], object],
        line: Line | None,
        timeout: float,
    ) -> Device:
        """Wait until `until(device)` holds (a WaitTimeout after `timeout`), showing `line`
        live on a terminal; `line` may also print lines of its own (through this narrator)."""
        deadline = time.monotonic() + timeout
        live = (
            Live(console=self.out, transient=True, auto_refresh=False)
            if self.out.is_terminal
            else None
        )
        with client.changes() as stream:
            if live is not None:
                live.start()
            try:
                while True:
                    device = client.device(device_id)
                    if until(device) and device is not None:
                        return device
                    text = line(device, time.time()) if line else ""
                    if live is not None and text:
                        live.update(Text(f"      {text}", style="yellow"), refresh=True)
                    if time.monotonic() > deadline:
                        seen = text or "no status"
                        raise WaitTimeout(f"waited {timeout:g}s in step {self.number} ({seen})")
                    stream.get(timeout=TICK)
            finally:
                if live is not None:
                    live.stop()
