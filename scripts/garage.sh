#!/usr/bin/env bash
# A real three-node Garage cluster (a distributed S3 engine; https://garagehq.deuxfleurs.fr)
# with replication 3, on loopback, for tests and benchmarks of the cluster mode. About a second
# to start once the binary is there; the first `cargo install garage --locked` takes about 11
# minutes on 2 cores (then cached in ~/.cargo/bin). Garage is AGPL: a test server, never linked.
# Checked by hand: rclone copied 20 MB to it, node 3 was stopped, and the file read back whole.
# Clients get the plain-HTTP endpoint; unset AWS_CA_BUNDLE for them (these machines set it).
#   scripts/garage.sh start DIR         # prints the S3 settings (AWS_* and FTP_ACTOR_S3_*)
#   scripts/garage.sh env DIR           # prints them again
#   scripts/garage.sh stop-node DIR N   # stops node N (1-3), as a failure test does
#   scripts/garage.sh start-node DIR N
#   scripts/garage.sh stop DIR
set -euo pipefail
command=${1:?usage: garage.sh start|env|stop|stop-node|start-node DIR [N]}
dir=$(realpath -m "${2:?usage: garage.sh start|env|stop|stop-node|start-node DIR [N]}")
garage=$(command -v garage || echo "$HOME/.cargo/bin/garage")
if [[ ! -x $garage ]]; then
  echo "garage.sh: building Garage once (cargo install garage --locked, about 11 minutes)" >&2
  cargo install garage --locked --quiet
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
node() { "$garage" -c "$dir/node$1/garage.toml" "${@:2}"; }
start_node() {
  # The environment of these machines names CA bundles that Garage's HTTP stack must not see.
  env -u AWS_CA_BUNDLE -u SSL_CERT_FILE "$garage" -c "$dir/node$1/garage.toml" server >"$dir/node$1/log" 2>&1 &
  echo $! >"$dir/node$1/pid"
  local port
  port=$(cat "$dir/node$1/rpc_port")
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
    sleep 0.05
  done
  echo "garage.sh: node $1 did not start (see $dir/node$1/log)" >&2
  exit 1
}
stop_node() {
  [[ -f $dir/node$1/pid ]] || return 0
  local pid
  pid=$(cat "$dir/node$1/pid")
  kill "$pid" 2>/dev/null || true
  # Gone before we return, so that a test that stops a node sees it stopped.
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  # A node that has not stopped in 10 s is killed: one whose directory was removed under it
  # was seen ignoring SIGTERM for good.
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  rm -f "$dir/node$1/pid"
}
settings() {
  cat "$dir/settings"
}
case $command in
  start)
    mkdir -p "$dir"
    secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    for n in 1 2 3; do
      mkdir -p "$dir/node$n/meta" "$dir/node$n/data"
      rpc=$(free_port)
      s3=$(free_port)
      echo "$rpc" >"$dir/node$n/rpc_port"
      echo "$s3" >"$dir/node$n/s3_port"
      cat >"$dir/node$n/garage.toml" <<TOML
metadata_dir = "$dir/node$n/meta"
data_dir = "$dir/node$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
TOML
      start_node "$n"
    done
    for n in 2 3; do
      node 1 node connect "$(node "$n" node id -q)" >/dev/null
    done
    for n in 1 2 3; do
      id=$(node "$n" node id -q)
      node 1 layout assign -z dc1 -c 1G "${id%%@*}" >/dev/null
    done
    node 1 layout apply --version 1 >/dev/null
    key_id="GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
    key_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    node 1 key import --yes -n ftp-actor "$key_id" "$key_secret" >/dev/null
    node 1 bucket create ftp-actor >/dev/null
    node 1 bucket allow --read --write --owner ftp-actor --key ftp-actor >/dev/null
    cat >"$dir/settings" <<ENV
AWS_ACCESS_KEY_ID=$key_id
AWS_SECRET_ACCESS_KEY=$key_secret
AWS_REGION=garage
FTP_ACTOR_S3_ENDPOINT=http://127.0.0.1:$(cat "$dir/node1/s3_port")
FTP_ACTOR_S3_BUCKET=ftp-actor
ENV
    settings
    ;;
  env) settings ;;
  stop-node) stop_node "${3:?which node (1-3)}" ;;
  start-node) start_node "${3:?which node (1-3)}" ;;
  stop) for n in 1 2 3; do stop_node "$n"; done ;;
  *) echo "usage: garage.sh start|env|stop|stop-node|start-node DIR [N]" >&2; exit 2 ;;
esac
