#!/usr/bin/env bash
# fleet-pki.sh - the certificates and passwords of a production fleet-agent broker.
#
#   fleet-pki.sh ca DIR                     a CA (DIR/ca.key, DIR/ca.crt; 10 years)
#   fleet-pki.sh server DIR NAME [SAN...]   a server certificate signed by the CA:
#                                           DIR/NAME.key, DIR/NAME.crt; SANs like
#                                           DNS:mqtt.example.com IP:10.0.0.5 (default DNS:NAME)
#   fleet-pki.sh client DIR ID              a client certificate with CN=ID (a device id, or
#                                           cloud / monitor): DIR/ID.key, DIR/ID.crt
#   fleet-pki.sh password PASSWD ID [OUT]   a random password for ID, added to the Mosquitto
#                                           password file PASSWD; the clear text is written to
#                                           OUT (default ./ID.password, mode 0600) for the
#                                           device's FLEET_AGENT_MQTT_PASSWORD_FILE
#
# Keys are EC P-256, created with mode 0600; nothing existing is overwritten (rotation means
# new files; see README.md). Needs openssl, and mosquitto_passwd for `password`.
# Environment: DAYS (certificate lifetime, default 825 for server and client certificates).
set -euo pipefail
umask 077
ID_RE='^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$'
die() { echo "fleet-pki.sh: $*" >&2; exit 2; }
fresh() { for f in "$@"; do [[ ! -e $f ]] || die "$f exists; refusing to overwrite it"; done; }
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() {
  local dir=$1; mkdir -p "$dir"; fresh "$dir/ca.key" "$dir/ca.crt"
  newkey "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "${CA_DAYS:-3650}" \
    -subj "/CN=fleet-agent broker CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.crt"
  chmod 0644 "$dir/ca.crt"
}

# issue DIR NAME EXTFILE: a key and a certificate with CN=NAME signed by DIR's CA
issue() {
  local dir=$1 name=$2 ext=$3
  [[ -r $dir/ca.key && -r $dir/ca.crt ]] || die "no CA in $dir (run: fleet-pki.sh ca $dir)"
  fresh "$dir/$name.key" "$dir/$name.crt"
  newkey "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -sha256 -days "${DAYS:-825}" -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext"
  chmod 0644 "$dir/$name.crt"
}

server() {
  local dir=$1 name=$2 ext; shift 2
  local sans=${*:-DNS:$name}
  ext=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "${sans// /,}" >"$ext"
  issue "$dir" "$name" "$ext"
}

client() {
  local dir=$1 id=$2 ext
  [[ $id =~ $ID_RE ]] || die "client id $id must match $ID_RE"
  ext=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$ext"
  issue "$dir" "$id" "$ext"
}

password() {
  local passwd=$1 id=$2 out=${3:-./$2.password} secret
  [[ $id =~ $ID_RE ]] || die "user $id must match $ID_RE"
  command -v mosquitto_passwd >/dev/null || die "mosquitto_passwd not found (apt-get install mosquitto)"
  fresh "$out"
  secret=$(openssl rand -base64 24 | tr -d '/+=\n')
  [[ -e $passwd ]] || : >"$passwd"
  # -b puts the password in this process's arguments for a moment; the file below is the
  # only lasting copy of the clear text.
  mosquitto_passwd -b "$passwd" "$id" "$secret"
  printf '%s\n' "$secret" >"$out"
  echo "password of $id written to $out"
}

cmd=${1:-}; shift || true
case $cmd in
  ca) (( $# == 1 )) || die "usage: fleet-pki.sh ca DIR"; ca "$@" ;;
  server) (( $# >= 2 )) || die "usage: fleet-pki.sh server DIR NAME [SAN...]"; server "$@" ;;
  client) (( $# == 2 )) || die "usage: fleet-pki.sh client DIR ID"; client "$@" ;;
  password) (( $# >= 2 && $# <= 3 )) || die "usage: fleet-pki.sh password PASSWD ID [OUT]"; password "$@" ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
