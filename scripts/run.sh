#!/usr/bin/env bash
# run.sh - the main command: `fleet-agent demo`, the origin story played live against real parts.
# From a fresh Debian/Ubuntu machine (as root): installs what is missing, creates the virtualenv,
# reuses a reachable Docker engine (else starts a private one), starts the local registry with
# test images and a local Mosquitto (broker-config/mosquitto.conf), then runs the demo: a real
# agent for device dev-001, a healthy and a broken service, backoff, escalation, fix, heal.
# The agent is left running to look around (the demo prints how); tear it down with
# `scripts/run.sh --stop`, or run `scripts/run.sh --cleanup` to tear down at the end.
#
#   scripts/run.sh [demo options]     the demo (see `fleet-agent demo --help`)
#   scripts/run.sh agent [options]    instead: `fleet-agent run` in the foreground on defaults
#                                     (device dev-001; Ctrl-C stops it)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
scripts/testenv.sh deps
scripts/venv.sh
eval "$(scripts/testenv.sh all)"
export FLEET_TEST_REGISTRY
export FLEET_AGENT_MQTT_URL=${FLEET_AGENT_MQTT_URL:-mqtt://$FLEET_TEST_MQTT_HOST:$FLEET_TEST_MQTT_PORT}
if [[ ${1:-} != agent ]]; then
  exec .venv/bin/fleet-agent demo "$@"
fi
shift
export FLEET_AGENT_DEVICE_ID=${FLEET_AGENT_DEVICE_ID:-dev-001}
export FLEET_AGENT_STATE_DIR=${FLEET_AGENT_STATE_DIR:-/var/lib/fleet-agent}
echo "run.sh: device $FLEET_AGENT_DEVICE_ID; watch with: .venv/bin/fleet-agent watch" >&2
exec .venv/bin/fleet-agent run "$@"
