#!/usr/bin/env bash
# A real PostgreSQL (from the Debian registry) for tests and benchmarks of the cluster mode:
# its own data directory, on a loopback port, password login (SCRAM), nothing shared with a
# system cluster. About a second to start.
#   scripts/postgres.sh start DIR [PORT] [--tls]   # prints FTP_ACTOR_PG_URL=postgres://...
#       --tls: TCP connections must be TLS, with a certificate for 127.0.0.1 signed by a CA made
#       here; also prints FTP_ACTOR_PG_CA=DIR/tls/ca.pem (for state.postgres.tls_ca_file).
#       A DIR started so once stays so.
#   scripts/postgres.sh env DIR            # prints it again
#   scripts/postgres.sh stop DIR
# PostgreSQL refuses to run as root: run as root, the script runs it as the `postgres` user the
# Debian package creates (and gives it DIR, whose parents that user must be able to enter: not a
# 0700 temporary directory). Installs the package when it is missing.
set -euo pipefail
command=${1:?usage: postgres.sh start|env|stop DIR [PORT]}
dir=$(realpath -m "${2:?usage: postgres.sh start|env|stop DIR [PORT]}")
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z $bin ]]; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
url() {
  echo "FTP_ACTOR_PG_URL=postgres://ftpactor:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/ftpactor"
  [[ ! -f $dir/tls/ca.pem ]] || echo "FTP_ACTOR_PG_CA=$dir/tls/ca.pem"
}
# A CA, and a certificate it signs for 127.0.0.1 and localhost, in DIR/tls.
make_certificates() {
  local tls=$dir/tls
  mkdir -p "$tls"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 30 -subj "/CN=ftp-actor test CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
  openssl req "${ec[@]}" -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 30 \
    -extfile "$tls/ext" -out "$tls/server.pem" 2>/dev/null
  chmod 600 "$tls/server.key"
}
case $command in
  start)
    port="" tls=""
    for arg in "${@:3}"; do
      if [[ $arg == --tls ]]; then tls=1; else port=$arg; fi
    done
    [[ -n $port ]] || port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$dir"
    [[ -z $tls || -f $dir/tls/ca.pem ]] || make_certificates
    [[ -f $dir/password ]] || head -c 18 /dev/urandom | base64 | tr '+/' '-_' > "$dir/password"
    echo "$port" > "$dir/port"
    [[ $(id -u) -eq 0 ]] && chown -R postgres "$dir"
    if [[ ! -d $dir/data ]]; then
      as_owner "$bin/initdb" -D "$dir/data" -U ftpactor --pwfile="$dir/password" -A scram-sha-256 \
        --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
      # With TLS, a TCP connection without it finds no entry and is refused.
      [[ ! -f $dir/tls/ca.pem ]] || sed -i 's/^host /hostssl /' "$dir/data/pg_hba.conf"
    fi
    ssl=()
    [[ ! -f $dir/tls/ca.pem ]] ||
      ssl=(-c ssl=on -c "ssl_cert_file=$dir/tls/server.pem" -c "ssl_key_file=$dir/tls/server.key")
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${ssl[*]}" start >/dev/null
    PGSSLMODE=prefer PGPASSWORD=$(cat "$dir/password") "$bin/psql" -h 127.0.0.1 -p "$port" -U ftpactor -d postgres -qtA \
      -c "SELECT 1 FROM pg_database WHERE datname = 'ftpactor'" | grep -q 1 ||
      PGSSLMODE=prefer PGPASSWORD=$(cat "$dir/password") "$bin/createdb" -h 127.0.0.1 -p "$port" -U ftpactor ftpactor
    url
    ;;
  env) url ;;
  stop) as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  *) echo "usage: postgres.sh start|env|stop DIR [PORT]" >&2; exit 2 ;;
esac
