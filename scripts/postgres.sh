#!/usr/bin/env bash
# A real PostgreSQL (from the Debian registry) for tests and benchmarks of the cluster mode:
# its own data directory, on a loopback port, password login (SCRAM), nothing shared with a
# system cluster. About a second to start.
#   scripts/postgres.sh start DIR [PORT]   # prints FTP_ACTOR_PG_URL=postgres://...
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
}
case $command in
  start)
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    mkdir -p "$dir"
    [[ -f $dir/password ]] || head -c 18 /dev/urandom | base64 | tr '+/' '-_' > "$dir/password"
    echo "$port" > "$dir/port"
    [[ $(id -u) -eq 0 ]] && chown -R postgres "$dir"
    if [[ ! -d $dir/data ]]; then
      as_owner "$bin/initdb" -D "$dir/data" -U ftpactor --pwfile="$dir/password" -A scram-sha-256 \
        --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
    PGPASSWORD=$(cat "$dir/password") "$bin/psql" -h 127.0.0.1 -p "$port" -U ftpactor -d postgres -qtA \
      -c "SELECT 1 FROM pg_database WHERE datname = 'ftpactor'" | grep -q 1 ||
      PGPASSWORD=$(cat "$dir/password") "$bin/createdb" -h 127.0.0.1 -p "$port" -U ftpactor ftpactor
    url
    ;;
  env) url ;;
  stop) as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  *) echo "usage: postgres.sh start|env|stop DIR [PORT]" >&2; exit 2 ;;
esac
