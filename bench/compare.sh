#!/usr/bin/env bash
# ftp-actor side by side with vsftpd and pyftpdlib on loopback, every workload, medians and
# ratios. See docs/BENCHMARKS.md.
#   bench/compare.sh                       # everything (12 to 20 minutes)
#   bench/compare.sh --only big --repeats 3
#   bench/compare.sh --only big,small,control --builds before=/tmp/ftp-actor-before --without-peers
#       (an A/B of a change: another build beside this tree's, round by round)
#   bench/compare.sh --only small --with-metrics metrics-on --without-peers
#       (this tree's build twice, the second with the metrics endpoint on)
# Options are passed to bench/compare.py (--size-mib, --repeats, --small-repeats, --only big,small,idle,silent,control,memory,
# --builds LABEL=BIN,..., --with-metrics LABEL, --with-plaintext LABEL, --without-peers).
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
python3 bench/compare.py --work "$BENCH_DIR" --peers-env "$BENCH_DIR/peers.env" "$@"
