#!/usr/bin/env bash
# testenv.sh - bring up the REAL services fleet-agent's integration tests, demo and
# benchmarks run against: a Docker engine, a local registry with two test images,
# and a Mosquitto broker. Everything is on loopback only (no Docker bridge network is
# ever created; test containers use --network none/host), no internet is needed (the
# test images are built from busybox-static), and every subcommand is idempotent:
# it reuses what already answers and only starts what is missing. Quiet on success;
# on failure it prints a clear message (and the tail of the service's log) to stderr.
#
#   deps          apt-get install what is missing (docker.io, docker-registry, busybox-static,
#                 mosquitto, mosquitto-clients, nats-server, curl, openssl, chromium,
#                 npm, postgresql: its server is started per test session by
#                 tests/integration/postgres.py)                              prints nothing
#   engine        reuse $DOCKER_HOST, else /var/run/docker.sock, else start a private
#                 dockerd                                        prints the DOCKER_HOST value
#   engine-start  always the private dockerd (start if down)     prints its DOCKER_HOST value
#   engine-stop   SIGTERM the private dockerd (ours, by pidfile), wait until gone; keeps data
#   registry      docker-registry on 127.0.0.1:$FLEET_TEST_REGISTRY_PORT (5000)  prints HOST:PORT
#   images        (needs DOCKER_HOST) push REG/fleet-test/app:1 and :2 and fleet-test/big:1
#                 (4 MiB of random data, for pull progress), then rmi them locally
#   broker        mosquitto on 127.0.0.1:$FLEET_TEST_MQTT_PORT (1883)      prints HOST:PORT
#   broker-stop   stop our mosquitto
#   all           deps engine registry images broker; prints `export X=...` lines for eval
#   down          stop everything this script started (never a reused system engine)
#
# Usage: eval "$(scripts/testenv.sh all)"
# State lives in /run/fleet-test (sockets, pids, logs) and /var/lib/fleet-test (data), or
# in $FLEET_TEST_ROOT/run and $FLEET_TEST_ROOT/lib when FLEET_TEST_ROOT is set.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${FLEET_TEST_ROOT:-} ]]; then RUN=$FLEET_TEST_ROOT/run LIB=$FLEET_TEST_ROOT/lib
else RUN=/run/fleet-test LIB=/var/lib/fleet-test; fi
PRIV_HOST=unix://$RUN/docker.sock
REG=127.0.0.1:${FLEET_TEST_REGISTRY_PORT:-5000}
MQTT_PORT=${FLEET_TEST_MQTT_PORT:-1883}
TMPD=
trap 'rm -rf "${TMPD:-/nonexistent}"' EXIT

die() { echo "testenv.sh: $*" >&2; exit 1; }

# alive PID: the process exists and is not a zombie
alive() { [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
dead() { ! alive "$1"; }

# ours PIDFILE COMM: print the pid from PIDFILE if that process is alive and named COMM
ours() {
  local pid
  [[ -s $1 ]] && pid=$(<"$1") && [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" &&
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && echo "$pid"
}

# wait_for SECONDS CMD...: retry CMD every 0.2 s until it succeeds
wait_for() {
  local n=$(($1 * 5)); shift
  until "$@" >/dev/null 2>&1; do (( n-- > 0 )) || return 1; sleep 0.2; done
}

# stop PIDFILE COMM SECONDS: SIGTERM our process (if any) and wait until it is gone
stop() {
  local pid
  if pid=$(ours "$1" "$2"); then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "$3" dead "$pid" || die "$2 (pid $pid) still running $3 s after SIGTERM"
  fi
  rm -f "$1"
}

# serve NAME LOG PIDFILE|- SECONDS CHECK CMD...: start CMD detached (own session, output to
# LOG, lock fd closed) and wait until the CHECK function succeeds; fail early if CMD dies.
serve() {
  local name=$1 log=$2 pidf=$3 n=$(($4 * 5)) check=$5 pid; shift 5
  echo "=== $(date -Is) $*" >>"$log"
  setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
  pid=$!
  [[ $pidf == - ]] || echo "$pid" >"$pidf"
  until "$check" >/dev/null 2>&1; do
    if dead "$pid" || (( n-- <= 0 )); then
      tail -n 15 "$log" >&2
      die "$name did not come up (pid $pid; log: $log)"
    fi
    sleep 0.2
  done
}

deps() {
  local pkgs=() prc=/usr/sbin/policy-rc.d added=
  command -v dockerd >/dev/null && command -v docker >/dev/null || pkgs+=(docker.io)
  command -v docker-registry >/dev/null || pkgs+=(docker-registry)
  [[ $(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null) == installed ]] &&
    [[ -x /bin/busybox ]] || pkgs+=(busybox-static)
  command -v mosquitto >/dev/null || pkgs+=(mosquitto)
  command -v mosquitto_sub >/dev/null && command -v mosquitto_pub >/dev/null || pkgs+=(mosquitto-clients)
  command -v nats-server >/dev/null || pkgs+=(nats-server)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v openssl >/dev/null || pkgs+=(openssl)
  command -v chromium >/dev/null || pkgs+=(chromium) # browser tests: Node-RED, dashboard
  command -v npm >/dev/null || pkgs+=(npm)           # Node-RED for the example flows' tests
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pkgs+=(postgresql) # recorder tests
  (( ${#pkgs[@]} )) || return 0
  [[ $(id -u) == 0 ]] || die "deps: must be root to install: ${pkgs[*]}"
  # Keep apt from starting system services (a system registry on :5000, mosquitto on :1883).
  if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; added=1; fi
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}"; } >"$RUN/apt.log" 2>&1; then
    [[ -z $added ]] || rm -f "$prc"
    tail -n 20 "$RUN/apt.log" >&2; die "deps: apt-get install ${pkgs[*]} failed (log: $RUN/apt.log)"
  fi
  [[ -z $added ]] || rm -f "$prc"
}

docker_ok() { timeout 10 docker -H "$1" version >/dev/null 2>&1; }
priv_ok() { docker_ok "$PRIV_HOST"; }

private_engine() {
  local pid
  priv_ok && return 0
  if pid=$(ours "$RUN/docker.pid" dockerd); then
    # An old private dockerd is still starting or shutting down: let it finish first
    # (dockerd refuses to start while the pid in its pidfile is alive).
    wait_for 40 eval "priv_ok || dead $pid" || die "old dockerd (pid $pid) neither answers nor exits"
    priv_ok && return 0
  fi
  rm -f "$RUN/docker.pid" # stale: its process is dead
  # After a hard kill, dockerd's containerd may linger as an unreaped zombie; dockerd
  # would "adopt" that pid and time out, so drop its pidfile when it is not really alive.
  local cpid=$RUN/exec/containerd/containerd.pid
  [[ -s $cpid ]] && alive "$(<"$cpid")" || rm -f "$cpid"
  mkdir -p "$RUN/exec" "$LIB/docker"
  serve dockerd "$RUN/dockerd.log" - 60 priv_ok \
    dockerd --host "$PRIV_HOST" --data-root "$LIB/docker" --exec-root "$RUN/exec" \
    --pidfile "$RUN/docker.pid" --bridge=none --iptables=false --ip6tables=false \
    --shutdown-timeout 2
}

engine() {
  if [[ -n ${DOCKER_HOST:-} ]] && docker_ok "$DOCKER_HOST"; then echo "$DOCKER_HOST"; return; fi
  if docker_ok unix:///var/run/docker.sock; then echo unix:///var/run/docker.sock; return; fi
  private_engine
  echo "$PRIV_HOST"
}

reg_ok() { curl -fsS -m 3 -o /dev/null "http://$REG/v2/"; }

registry() {
  reg_ok 2>/dev/null && return 0
  stop "$RUN/registry.pid" docker-registry 10 # ours but not answering: restart it
  mkdir -p "$RUN/registry" "$LIB/registry"
  cat >"$RUN/registry/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $LIB/registry}
  delete: {enabled: true}
http: {addr: "$REG"}
EOF
  serve docker-registry "$RUN/registry.log" "$RUN/registry.pid" 30 reg_ok \
    docker-registry serve "$RUN/registry/config.yml"
}

# have_tag TAG [REPO]: the registry holds REPO:TAG (REPO defaults to fleet-test/app)
have_tag() {
  curl -fsS -m 5 -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/${2:-fleet-test/app}/manifests/$1"
}

# push_image NAME [ROOT]: import ROOT (a busybox root) as NAME, push it, drop the local copy
# (the agent under test must really pull from the registry)
push_image() {
  tar -C "$2" -c . | docker import -c 'ENV PATH=/bin' \
    -c 'CMD ["/bin/sh","-c","sleep 3600"]' - "$1" >/dev/null
  docker push -q "$1" >/dev/null
  docker rmi "$1" >/dev/null
}

images() {
  [[ -n ${DOCKER_HOST:-} ]] || die 'images: export DOCKER_HOST first (eval "$(scripts/testenv.sh all)")'
  reg_ok || die "images: no registry answers on $REG (run: scripts/testenv.sh registry)"
  local apps=1 big=1
  have_tag 1 2>/dev/null && have_tag 2 2>/dev/null && apps=
  have_tag 1 fleet-test/big 2>/dev/null && big=
  [[ -n $apps$big ]] || return 0
  TMPD=$(mktemp -d)
  local root=$TMPD/root a v
  mkdir -p "$root/bin" "$root/etc" "$root/tmp"; chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$root/bin/$a"; done
  echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"; echo 'root:x:0:' >"$root/etc/group"
  if [[ -n $apps ]]; then
    for v in 1 2; do
      echo "$v" >"$root/etc/app-version" # makes the two image IDs differ
      push_image "$REG/fleet-test/app:$v" "$root"
    done
  fi
  if [[ -n $big ]]; then # for pull progress: 4 MiB of random data (it does not compress)
    mkdir -p "$root/data"; head -c 4194304 /dev/urandom >"$root/data/random"
    push_image "$REG/fleet-test/big:1" "$root"
  fi
}

mqtt_ok() { timeout 5 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '$SYS/broker/version' -C 1 -W 3; }

broker() {
  mqtt_ok >/dev/null 2>&1 && return 0
  stop "$RUN/mosquitto.pid" mosquitto 10 # ours but not answering: restart it
  local conf=$REPO/broker-config/mosquitto.conf
  [[ -r $conf ]] || die "broker: missing $conf"
  if [[ $MQTT_PORT != 1883 ]]; then # a copy with the overridden port
    sed "s/^listener 1883 /listener $MQTT_PORT /" "$conf" >"$RUN/mosquitto.conf"
    conf=$RUN/mosquitto.conf
  fi
  # Logs go to stderr -> a root-owned file opened here, so the dropped user needs no access.
  serve mosquitto "$RUN/mosquitto.log" "$RUN/mosquitto.pid" 20 mqtt_ok mosquitto -c "$conf"
}

all() {
  local host
  deps
  host=$(engine)
  export DOCKER_HOST=$host
  registry; images; broker
  cat <<EOF
export DOCKER_HOST=$host
export FLEET_TEST_REGISTRY=$REG
export FLEET_TEST_IMAGE_1=$REG/fleet-test/app:1
export FLEET_TEST_IMAGE_2=$REG/fleet-test/app:2
export FLEET_TEST_IMAGE_BIG=$REG/fleet-test/big:1
export FLEET_TEST_MQTT_HOST=127.0.0.1
export FLEET_TEST_MQTT_PORT=$MQTT_PORT
EOF
}

cmd=${1:-}
case $cmd in
  deps|engine|engine-start|engine-stop|registry|images|broker|broker-stop|all|down) ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
mkdir -p "$RUN"
exec 9>"$RUN/lock" # serialize concurrent calls (daemons are started with fd 9 closed)
flock -w 180 9 || die "another testenv.sh still holds $RUN/lock"
case $cmd in
  deps) deps ;;
  engine) engine ;;
  engine-start) private_engine; echo "$PRIV_HOST" ;;
  engine-stop) stop "$RUN/docker.pid" dockerd 30 ;;
  registry) registry; echo "$REG" ;;
  images) images ;;
  broker) broker; echo "127.0.0.1:$MQTT_PORT" ;;
  broker-stop) stop "$RUN/mosquitto.pid" mosquitto 10 ;;
  all) all ;;
  down) stop "$RUN/mosquitto.pid" mosquitto 10; stop "$RUN/registry.pid" docker-registry 10
        stop "$RUN/docker.pid" dockerd 30 ;;
esac
