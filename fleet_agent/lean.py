"""Start-up levers that keep the device agent's memory small (docs/benchmarks.md, footprint).

`fleet-agent run` applies them before the agent's libraries are imported and before any thread
starts; nothing else calls them (tests and the operator tools run on Python's defaults).

- glibc gives a thread that allocates while another one does an arena of its own (up to 8 per
  core), and each arena keeps what was freed in it: with a thread per step job, 50 services
  started together leave a dozen arenas of freed memory behind. `MALLOC_ARENA_MAX=2` bounds
  them. glibc reads it only when a process starts, so `run` starts itself again once with it
  set (the same pid, arguments and environment otherwise); a value already set wins, and other
  C libraries (musl) ignore it. (Setting it through ctypes' `mallopt` instead would cost more
  than it saves: ctypes alone is 0.8 MiB.)
- requests imports a character-set detector (charset_normalizer: 2.6 MiB with its compiled
  modules and unicodedata) only to guess the encoding of an answer that names none. The engine
  answers JSON, which requests reads as UTF-8 without it, and requests itself falls back to
  UTF-8 when no detector is installed; the agent marks the detectors absent.
"""

from __future__ import annotations

import os
import sys
import warnings

ARENAS = "2"
DETECTORS = ("charset_normalizer", "chardet")


def limit_malloc_arenas() -> None:
    """Start this process again with `MALLOC_ARENA_MAX` set, unless it is set already.
    Returns only when it is set; call it before any thread starts."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    if not sys.executable or not sys.orig_argv:
        return  # an embedded interpreter: nothing to start again
    os.environ["MALLOC_ARENA_MAX"] = ARENAS
    os.execv(sys.executable, sys.orig_argv)


def skip_charset_detection() -> None:
    """requests without a character-set detector (it reads undeclared text as UTF-8)."""
    for name in DETECTORS:
        # None: `import` raises ImportError (the documented way; typeshed allows modules only)
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
