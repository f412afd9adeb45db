#!/usr/bin/env bash
# Resumed transfers of a 1 GiB file, builds side by side, round by round. See
# docs/BENCHMARKS.md, "Resuming a transfer".
#
#   bench/resume.sh put [ROUNDS [SERVER...]]
#       Server builds side by side: each round starts a verified put with the load generator,
#       kills it KILL seconds later (default 2.2, login included), then times the put run
#       again, which resumes the partial left.
#   bench/resume.sh get [ROUNDS [LOADGEN...]]
#       Client builds (the load generator) side by side: each round cuts a verified get after
#       CUT_MIB MiB (default 900) with bench/cut_proxy.py, then times the get run again.
#
# ROUNDS defaults to 5; without builds, the release build of this tree. Pass the binaries of
# an older build, copied aside, then this tree's, to compare them.
set -euo pipefail
DIRECTION=${1:?put or get}; ROUNDS=${2:-5}; shift $(( $# < 2 ? $# : 2 ))
BUILDS=()
for build in "$@"; do BUILDS+=("$(realpath "$build")"); done
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ftp-actor --example loadgen
SERVER=$PWD/target/release/ftp-actor LG=$PWD/target/release/examples/loadgen
W=${BENCH_DIR:-/dev/shm/ftp-actor-resume}
mkdir -p "$W"
rm -rf "$W"/data* "$W"/serve* "$W"/copy* "$W"/.copy*
[ -f "$W/big.bin" ] || head -c 1G /dev/urandom > "$W/big.bin"
PIDS=() ADDRS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
start_server() { # BINARY -> index in PIDS/ADDRS
  local k=${#PIDS[@]} D=$W/data${#PIDS[@]}
  FTP_ACTOR_PASSWORD=bench "$1" user add bench --quota 1TiB --data-dir "$D" >/dev/null
  "$1" serve --data-dir "$D" --listen 127.0.0.1:0 > "$W/serve$k.out" 2> "$W/serve$k.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$W/serve$k.out" 2>/dev/null && break; sleep 0.1; done
  ADDRS+=("$(sed -n 's/^ftp-actor listening on \([^ ]*\).*/\1/p' "$W/serve$k.out")")
}
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "build partial_mib resume_seconds client_cpu server_cpu"
if [ "$DIRECTION" = put ]; then
  [ ${#BUILDS[@]} -gt 0 ] || BUILDS=("$SERVER")
  for build in "${BUILDS[@]}"; do start_server "$build"; done
  for _ in $(seq "$ROUNDS"); do
    for k in "${!BUILDS[@]}"; do
      H=$W/data$k/homes/bench
      rm -f "$H/big.bin" "$H/.big.bin.ftpa-part"; sleep 2
      run=("$LG" --addr "${ADDRS[$k]}" --cacert "$W/data$k/ftp-tls-cert.pem" --user bench --password bench put "$W/big.bin" big.bin)
      { timeout -s KILL "${KILL:-2.2}" "${run[@]}" >/dev/null 2>&1 || true; } 2>/dev/null
      sleep 2
      partial=$(stat -c %s "$H/.big.bin.ftpa-part")
      before=$(cpu "${PIDS[$k]}")
      result=$("${run[@]}")
      echo "$k $((partial >> 20)) $(field seconds "$result") $(field cpu "$result") $(awk -v a="$(cpu "${PIDS[$k]}")" -v b="$before" 'BEGIN {print a - b}')"
    done
  done
  grep -ho 'resumed_from=[0-9]* prefix_hashed=[0-9]*' "$W"/serve*.log || true
else
  [ ${#BUILDS[@]} -gt 0 ] || BUILDS=("$LG")
  start_server "$SERVER"
  CA=(--cacert "$W/data0/ftp-tls-cert.pem")
  "$LG" --addr "${ADDRS[0]}" "${CA[@]}" --user bench --password bench put "$W/big.bin" big.bin >/dev/null
  for _ in $(seq "$ROUNDS"); do
    for k in "${!BUILDS[@]}"; do
      rm -f "$W/copy.bin" "$W"/.copy.bin.ftpa-part "$W"/..copy.bin.ftpa-part.ftpa-part; sleep 2
      coproc CUT { exec python3 bench/cut_proxy.py "${ADDRS[0]}" $(( ${CUT_MIB:-900} << 20 )); }
      cut_pid=$CUT_PID
      read -r port <&"${CUT[0]}"
      "${BUILDS[$k]}" --addr "127.0.0.1:$port" "${CA[@]}" --user bench --password bench get big.bin "$W/copy.bin" >/dev/null 2>&1 || true
      kill "$cut_pid"; wait "$cut_pid" 2>/dev/null || true
      sleep 2
      partial=$(stat -c %s "$W/.copy.bin.ftpa-part")
      before=$(cpu "${PIDS[0]}")
      result=$("${BUILDS[$k]}" --addr "${ADDRS[0]}" "${CA[@]}" --user bench --password bench get big.bin "$W/copy.bin")
      echo "$k $((partial >> 20)) $(field seconds "$result") $(field cpu "$result") $(awk -v a="$(cpu "${PIDS[0]}")" -v b="$before" 'BEGIN {print a - b}')"
    done
  done
fi
rm -rf "$W"/data* "$W"/copy.bin
