#!/usr/bin/env bash
# test.sh - the whole test suite, from a fresh Debian/Ubuntu machine (as root) or a warm one.
# Installs missing system packages, creates the virtualenv, starts the real services the
# integration tests need (Docker engine, registry, Mosquitto: see scripts/testenv.sh), installs
# the integrations' programs once (Home Assistant, Node-RED: scripts/ha-venv.sh,
# scripts/node-red.sh), checks lint, types and the import layering (import-linter), then runs
# pytest. Extra arguments go to pytest (e.g. `-k backoff`).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
scripts/testenv.sh deps
scripts/venv.sh
eval "$(scripts/testenv.sh all)"
# The integrations' real programs, installed once into caches (first run: a few minutes):
scripts/ha-venv.sh >/dev/null    # Home Assistant in /var/cache/fleet-test/ha-venv
scripts/node-red.sh >/dev/null   # Node-RED + Dashboard 2 in examples/node-red (npm ci)
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports --no-logo --no-cache  # the layering contracts in pyproject.toml
exec .venv/bin/pytest "$@"
