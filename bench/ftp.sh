#!/usr/bin/env bash
# The FTP front end next to vsftpd and pyftpdlib, all driven by the same curl on loopback:
# a 1 GiB download and upload, repeated and interleaved, medians of the transfer time (curl's
# total minus its pre-transfer time, so logins are counted apart). Logins are timed apart with
# Python's ftplib (connect, then login() alone, 20 per server): curl's own timing of the login
# step sometimes adds a second of its polling when a reply takes longer than its first polls.
# ftp-actor is measured twice: plain FTP (PROT C, plaintext login allowed for the benchmark
# only) and FTPS (AUTH TLS, PROT P). The peers serve plain FTP. See docs/BENCHMARKS.md.
#   bench/ftp.sh                 # 5 rounds
#   ROUNDS=3 bench/ftp.sh
# BENCH_DIR (default /dev/shm/ftp-actor-bench) holds every server's files, on one filesystem.
# Needs root for the peers (see bench/peers.sh); curl.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/dev/shm/ftp-actor-bench}
ROUNDS=${ROUNDS:-5}
FTP_PORT=${FTP_PORT:-2122}
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
cargo build --release --quiet --bin ftp-actor
WORK=$BENCH_DIR/ftp
rm -rf "$WORK" && mkdir -p "$WORK"
export PEERS_DIR=$BENCH_DIR/peers
bench/peers.sh start > "$BENCH_DIR/peers.env"
# shellcheck disable=SC1091
source "$BENCH_DIR/peers.env"
cat > "$WORK/config.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$WORK/data"
[ftp]
listen = "127.0.0.1:$FTP_PORT"
allow_plaintext_login = true
TOML
SECRET=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
FTP_ACTOR_PASSWORD=$SECRET target/release/ftp-actor user add bench --quota 100GiB --config "$WORK/config.toml" >/dev/null
target/release/ftp-actor serve --config "$WORK/config.toml" > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; bench/peers.sh stop' EXIT
for _ in $(seq 50); do grep -q FTP "$WORK/serve.out" 2>/dev/null && break; sleep 0.2; done
head -c $((1 << 30)) /dev/urandom > "$WORK/source.bin"
cp "$WORK/source.bin" "$WORK/data/homes/bench/big.bin"
cp "$WORK/source.bin" "$PEER_HOME/big.bin" && chown "$PEER_USER" "$PEER_HOME/big.bin"

CERT=$WORK/data/ftp-tls-cert.pem
declare -A URL=(
  [ftp-actor]="ftp://bench:$SECRET@127.0.0.1:$FTP_PORT"
  [ftp-actor-tls]="ftp://bench:$SECRET@localhost:$FTP_PORT"
  [vsftpd]="ftp://$PEER_USER:$PEER_PASS@$VSFTPD_ADDR"
  [pyftpdlib]="ftp://$PEER_USER:$PEER_PASS@$PYFTPD_ADDR"
)
tls_args() { [[ $1 == ftp-actor-tls ]] && echo "--ssl-reqd --cacert $CERT" || true; }
# Prints "login transfer" seconds for one curl run.
timed() { curl -sS -w '%{time_pretransfer} %{time_total}\n' "$@" | awk '{ printf "%.3f\n", $2 - $1 }'; }

results=$WORK/results.txt
: > "$results"
for round in $(seq "$ROUNDS"); do
  for server in ftp-actor ftp-actor-tls vsftpd pyftpdlib; do
    # shellcheck disable=SC2046
    get=$(timed $(tls_args $server) -o /dev/null "${URL[$server]}/big.bin")
    # shellcheck disable=SC2046
    put=$(timed $(tls_args $server) -T "$WORK/source.bin" "${URL[$server]}/upload-$round.bin")
    echo "$server $get $put" >> "$results"
    rm -f "$WORK/data/homes/bench/upload-$round.bin" "$PEER_HOME/upload-$round.bin"
  done
  echo "round $round done" >&2
done
python3 - "$results" "$FTP_PORT" "$SECRET" "$CERT" "$PEER_USER" "$PEER_PASS" "$VSFTPD_ADDR" "$PYFTPD_ADDR" <<'PY'
import ftplib, ssl, statistics, sys, time
results, port, secret, cert, peer_user, peer_pass, vsftpd, pyftpd = sys.argv[1:]
def login_seconds(host, port, user, password, tls):
    times = []
    for _ in range(20):
        ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=cert)) if tls else ftplib.FTP()
        ftp.connect(host, int(port))
        start = time.perf_counter()
        ftp.login(user, password)
        times.append(time.perf_counter() - start)
        ftp.quit()
    return statistics.median(times)
logins = {
    "ftp-actor": login_seconds("127.0.0.1", port, "bench", secret, False),
    "ftp-actor-tls": login_seconds("localhost", port, "bench", secret, True),
    "vsftpd": login_seconds(*vsftpd.split(":"), peer_user, peer_pass, False),
    "pyftpdlib": login_seconds(*pyftpd.split(":"), peer_user, peer_pass, False),
}
rows = {}
for line in open(results):
    server, *values = line.split()
    rows.setdefault(server, []).append([float(v) for v in values])
print("| server | login (s) | 1 GiB download (s) | 1 GiB upload (s) | runs |")
print("|---|---|---|---|---|")
for server, runs in rows.items():
    medians = [statistics.median(column) for column in zip(*runs)]
    ranges = [f"{min(c):.2f}-{max(c):.2f}" for c in zip(*runs)]
    print(f"| {server} | {logins[server]:.3f} | {medians[0]:.2f} ({ranges[0]}) | {medians[1]:.2f} ({ranges[1]}) | {len(runs)} |")
PY
