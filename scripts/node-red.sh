#!/usr/bin/env bash
# node-red.sh - install Node-RED and FlowFuse Dashboard 2 for the example flows
# (examples/node-red) with `npm ci` from the committed package-lock.json, once: a stamp in
# node_modules records the lock file installed, so a warm machine returns at once (npm's own
# cache in ~/.npm keeps a fresh install quick too). Prints the node-red executable.
#
#   scripts/node-red.sh            install if missing or the lock file changed
#   scripts/node-red.sh run ARGS   install, then run node-red in the foreground with ARGS
#                                  (e.g. -u USERDIR -s examples/node-red/settings.js)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$REPO/examples/node-red
die() { echo "node-red.sh: $*" >&2; exit 1; }
command -v npm >/dev/null || die "npm is missing (apt-get install -y nodejs npm)"
exec 8>"$DIR/.install.lock"
flock -w 600 8 || die "another node-red.sh holds $DIR/.install.lock"
stamp=$DIR/node_modules/.fleet-lock
if ! [[ -x $DIR/node_modules/.bin/node-red && -f $stamp ]] || ! cmp -s "$stamp" "$DIR/package-lock.json"; then
  log=$(mktemp)
  if ! (cd "$DIR" && npm ci --no-audit --no-fund --prefer-offline) >"$log" 2>&1; then
    tail -n 30 "$log" >&2; rm -f "$log"; die "npm ci failed"
  fi
  rm -f "$log"
  cp "$DIR/package-lock.json" "$stamp"
fi
exec 8>&-
if [[ ${1:-} == run ]]; then shift; exec "$DIR/node_modules/.bin/node-red" "$@"; fi
echo "$DIR/node_modules/.bin/node-red"
