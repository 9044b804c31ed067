#!/usr/bin/env bash
# ha-venv.sh - install a real Home Assistant (for the MQTT discovery tests) into a cached
# virtualenv outside the repo, once. Idempotent: a stamp file records the installed version
# and the extra requirements, so a warm machine returns at once. Home Assistant needs
# Python 3.13 (pyenv's /root/.pyenv/versions/3.13.0 here, or $HA_PYTHON); the MQTT
# integration's requirement (paho-mqtt) and the few the integrations we load ask for are
# installed here too, so the tests can run `hass --skip-pip` and never reach PyPI per run.
#
#   scripts/ha-venv.sh            install if missing; prints the venv path
# Env: HA_VENV (default /var/cache/fleet-test/ha-venv), HA_PYTHON, HA_VERSION.
set -euo pipefail
HA_VENV=${HA_VENV:-/var/cache/fleet-test/ha-venv}
HA_PYTHON=${HA_PYTHON:-/root/.pyenv/versions/3.13.0/bin/python}
HA_VERSION=${HA_VERSION:-2025.4.4}
# Requirements of the integrations the tests load (mqtt, the frontend every start needs,
# the http stack), matching Home Assistant 2025.4's manifests.
HA_EXTRA=${HA_EXTRA:-"paho-mqtt==2.1.0 home-assistant-frontend==20250411.0 PyTurboJPEG==1.7.5 Pillow==11.1.0"}
want="homeassistant==$HA_VERSION $HA_EXTRA"
stamp=$HA_VENV/.fleet-installed
die() { echo "ha-venv.sh: $*" >&2; exit 1; }

mkdir -p "$(dirname "$HA_VENV")"
exec 8>"$HA_VENV.lock"
flock -w 1800 8 || die "another ha-venv.sh holds $HA_VENV.lock"
if [[ -f $stamp && $(<"$stamp") == "$want" && -x $HA_VENV/bin/hass ]]; then
  echo "$HA_VENV"; exit 0
fi
[[ -x $HA_PYTHON ]] || die "no Python 3.13 at $HA_PYTHON (set HA_PYTHON)"
[[ -x $HA_VENV/bin/python ]] || "$HA_PYTHON" -m venv "$HA_VENV" || die "venv $HA_VENV failed"
log=$HA_VENV.install.log
# shellcheck disable=SC2086
if ! { "$HA_VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip &&
       "$HA_VENV/bin/python" -m pip install --disable-pip-version-check "homeassistant==$HA_VERSION" &&
       "$HA_VENV/bin/python" -m pip install --disable-pip-version-check $HA_EXTRA; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2; die "pip install failed (log: $log)"
fi
echo "$want" >"$stamp"
echo "$HA_VENV"
