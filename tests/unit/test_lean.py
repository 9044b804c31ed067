"""The start-up levers of `fleet-agent run` (fleet_agent/lean.py), each in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

from fleet_agent import lean


def python(code: str, **env: str) -> list[str]:
    variables = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    done = subprocess.run(
        [sys.executable, "-c", code], env=variables, capture_output=True, text=True, check=True
    )
    assert done.stderr == ""
    return done.stdout.split()


ARENAS = """
import os
from fleet_agent import lean
print(os.getpid(), os.environ.get("MALLOC_ARENA_MAX"), flush=True)
lean.limit_malloc_arenas()
print("after", os.environ["MALLOC_ARENA_MAX"])
"""


def test_the_process_starts_itself_again_once_with_the_arena_limit_and_keeps_its_pid() -> None:
    first_pid, unset, again_pid, limit, after, kept = python(ARENAS)
    assert unset == "None" and limit == lean.ARENAS and (after, kept) == ("after", limit)
    assert first_pid == again_pid


def test_an_arena_limit_already_set_is_kept_and_nothing_starts_again() -> None:
    _pid, given, after, kept = python(ARENAS, MALLOC_ARENA_MAX="4")
    assert (given, after, kept) == ("4", "after", "4")


def test_requests_without_a_charset_detector_warns_nothing_and_reads_undeclared_utf8() -> None:
    out = python("""
import sys
from fleet_agent import lean
lean.skip_charset_detection()
import requests
response = requests.Response()
response._content = "größe".encode()
print(response.text == "größe", "charset_normalizer" in sys.modules and
      sys.modules["charset_normalizer"] is not None)
""")
    assert out == ["True", "False"]
