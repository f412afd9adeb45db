#!/usr/bin/env bash
# The FTP front end next to vsftpd and pyftpdlib with standard clients (Python's ftplib, and
# curl for large files), interleaved, medians; ftp-actor over plain FTP and over FTPS.
# See bench/standard_clients.py for the workloads and docs/BENCHMARKS.md, "Standard clients".
#   bench/ftp.sh                                  # everything (about 15 minutes)
#   bench/ftp.sh --only logins,pwd --repeats 3
# Options are passed to bench/standard_clients.py (--repeats, --seconds, --size-mib,
# --only logins,small,light,pairs,single,pwd,list,large; --entries for list).
# BENCH_DIR (default /dev/shm/ftp-actor-bench) holds every server's files, on one filesystem.
# Needs root for the peers (see bench/peers.sh); curl and md5sum.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/dev/shm/ftp-actor-bench}
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
cargo build --release --quiet --bin ftp-actor --example loadgen
mkdir -p "$BENCH_DIR"
export PEERS_DIR=$BENCH_DIR/peers
trap 'bench/peers.sh stop' EXIT
bench/peers.sh start > "$BENCH_DIR/peers.env"
python3 bench/standard_clients.py --work "$BENCH_DIR" --peers-env "$BENCH_DIR/peers.env" "$@"
