#!/usr/bin/env bash
# Server resident memory during a large upload and download (default 4 GiB each way).
#   bench/memory.sh            # SIZE_MIB=4096
#   SIZE_MIB=1024 bench/memory.sh
# Prints the server's peak resident set (VmHWM) and the transfer times. The data directory is
# prepared with `ftp-actor user add` beforehand, so the server process itself never runs scrypt
# (SCRAM leaves key derivation to the client); the peak is the server's own.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-4096}
cargo build --release --quiet
BIN=$PWD/target/release/ftp-actor
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ftp-actor-mem.XXXXXX")
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

echo "creating a ${SIZE_MIB} MiB random file"
head -c "${SIZE_MIB}M" /dev/urandom > "$WORK/big.bin"
FTP_ACTOR_PASSWORD=bench "$BIN" user add bench --quota 1TiB --data-dir "$WORK/data" >/dev/null
"$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^ftp-actor listening on \([^ ]*\).*/\1/p' "$WORK/serve.out")
echo "server pid $SERVER on $ADDR; idle RSS $(grep VmRSS /proc/$SERVER/status | awk '{print $2, $3}')"

cd "$WORK"
FTP_ACTOR_PASSWORD=bench "$BIN" shell --connect "$ADDR" --user bench --batch - <<CMDS
put big.bin
get big.bin back.bin
CMDS
cmp big.bin back.bin && echo "round trip identical"
echo "server peak RSS (VmHWM): $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
