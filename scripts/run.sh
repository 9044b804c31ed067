#!/usr/bin/env bash
# run.sh - the main job: fleet-agent on defaults against a local engine, registry and broker.
# From a fresh Debian/Ubuntu machine (as root): installs what is missing, reuses a reachable
# Docker engine (else starts a private one), starts the local registry with test images and a
# local Mosquitto (broker-config/mosquitto.conf), then runs the agent in the foreground.
# Ctrl-C stops it. Watch it with:  mosquitto_sub -v -t 'fleet/#'
#
# Without arguments the agent takes its target from MQTT (fleet/$FLEET_AGENT_DEVICE_ID/target);
# when no target is retained there yet, examples/target.json is published first, so there is
# something to see. Any arguments are passed to `fleet-agent run` instead (for example
# `--target-file examples/target.json` for local mode).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
scripts/testenv.sh deps
scripts/venv.sh
eval "$(scripts/testenv.sh all)"
export FLEET_AGENT_DEVICE_ID=${FLEET_AGENT_DEVICE_ID:-dev-001}
export FLEET_AGENT_MQTT_URL=${FLEET_AGENT_MQTT_URL:-mqtt://$FLEET_TEST_MQTT_HOST:$FLEET_TEST_MQTT_PORT}
export FLEET_AGENT_STATE_DIR=${FLEET_AGENT_STATE_DIR:-/var/lib/fleet-agent}
topic=${FLEET_AGENT_TOPIC_PREFIX:-fleet}/$FLEET_AGENT_DEVICE_ID/target
mqtt=(-h "$FLEET_TEST_MQTT_HOST" -p "$FLEET_TEST_MQTT_PORT")
if [[ $# -eq 0 ]]; then
  if [[ -z $(mosquitto_sub "${mqtt[@]}" -t "$topic" -C 1 -W 1 --retained-only 2>/dev/null || true) ]]; then
    mosquitto_pub "${mqtt[@]}" -q 1 -r -t "$topic" -f examples/target.json
    echo "run.sh: published examples/target.json as the retained target on $topic" >&2
  fi
fi
echo "run.sh: device $FLEET_AGENT_DEVICE_ID; watch with: mosquitto_sub -v -t '${FLEET_AGENT_TOPIC_PREFIX:-fleet}/#'" >&2
exec .venv/bin/fleet-agent run "$@"
