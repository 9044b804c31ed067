#!/usr/bin/env bash
# run.sh - the main job: fleet-agent on defaults against a local engine, registry and broker.
# From a fresh Debian/Ubuntu machine (as root): installs what is missing, reuses a reachable
# Docker engine (else starts a private one), starts the local registry with test images and a
# local Mosquitto, then runs the agent in the foreground. Ctrl-C stops it.
# Without arguments it runs the example target (examples/target.json, local mode); any
# arguments are passed to `fleet-agent run` instead.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
scripts/testenv.sh deps
scripts/venv.sh
eval "$(scripts/testenv.sh all)"
export FLEET_AGENT_DEVICE_ID=${FLEET_AGENT_DEVICE_ID:-dev-001}
export FLEET_AGENT_MQTT_URL=${FLEET_AGENT_MQTT_URL:-mqtt://127.0.0.1:$FLEET_TEST_MQTT_PORT}
if [[ $# -eq 0 ]]; then set -- --target-file examples/target.json; fi
exec .venv/bin/fleet-agent run "$@"
