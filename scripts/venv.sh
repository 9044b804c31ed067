#!/usr/bin/env bash
# venv.sh - create or refresh the project's virtualenv (.venv) with the package and dev tools.
# Idempotent: reinstalls only when pyproject.toml changed since the last install. On a fresh
# Debian/Ubuntu machine it installs python3-venv first when the venv module is missing.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "venv.sh: Python 3.11 or newer is needed as '$PYTHON'" >&2; exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -m ensurepip --version >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
