#!/usr/bin/env bash
# Resumed uploads, servers side by side: each round starts a 1 GiB verified put with the load
# generator, kills it KILL seconds later (login included), then times the put run again, which
# resumes the partial left. Servers alternate round by round. See docs/BENCHMARKS.md,
# "Resuming an upload".
#
# usage: bench/resume.sh [ROUNDS [KILL [SERVER...]]]
#   defaults: 5 rounds, 2.2 s, the release build of this tree; pass several server binaries
#   (for example an older build copied aside) to compare them.
set -euo pipefail
ROUNDS=${1:-5}; KILL=${2:-2.2}; shift $(( $# < 2 ? $# : 2 ))
SERVERS=()
for server in "$@"; do SERVERS+=("$(realpath "$server")"); done
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ftp-actor --example loadgen
LG=$PWD/target/release/examples/loadgen
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=("$PWD/target/release/ftp-actor")
W=${BENCH_DIR:-/dev/shm/ftp-actor-resume}
mkdir -p "$W"
rm -f "$W"/serve*
[ -f "$W/big.bin" ] || head -c 1G /dev/urandom > "$W/big.bin"
PIDS=()
ADDRS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
for k in "${!SERVERS[@]}"; do
  D=$W/data$k; rm -rf "$D"
  FTP_ACTOR_PASSWORD=bench "${SERVERS[$k]}" user add bench --quota 1TiB --data-dir "$D" >/dev/null
  "${SERVERS[$k]}" serve --data-dir "$D" --listen 127.0.0.1:0 > "$W/serve$k.out" 2> "$W/serve$k.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$W/serve$k.out" 2>/dev/null && break; sleep 0.1; done
  ADDRS+=("$(sed -n 's/^ftp-actor listening on \([^ ]*\).*/\1/p' "$W/serve$k.out")")
done
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
echo "server partial_mib resume_seconds client_cpu server_cpu"
for _ in $(seq "$ROUNDS"); do
  for k in "${!SERVERS[@]}"; do
    H=$W/data$k/homes/bench
    rm -f "$H/big.bin" "$H/.big.bin.ftpa-part"; sleep 2
    run=("$LG" --addr "${ADDRS[$k]}" --user bench --password bench put "$W/big.bin" big.bin)
    { timeout -s KILL "$KILL" "${run[@]}" >/dev/null 2>&1 || true; } 2>/dev/null
    sleep 2
    partial=$(stat -c %s "$H/.big.bin.ftpa-part")
    before=$(cpu "${PIDS[$k]}")
    result=$("${run[@]}")
    seconds=$(sed -n 's/.*seconds=\([^ ]*\).*/\1/p' <<<"$result")
    client=$(sed -n 's/.*cpu=\([^ ]*\).*/\1/p' <<<"$result")
    echo "$k $((partial >> 20)) $seconds $client $(awk -v a="$(cpu "${PIDS[$k]}")" -v b="$before" 'BEGIN {print a - b}')"
  done
done
grep -ho 'resumed_from=[0-9]* prefix_hashed=[0-9]*' "$W"/serve*.log || true
rm -rf "$W"/data*
