#!/usr/bin/env bash
# SFTP with OpenSSH's client: ftp-actor's SFTP listener next to OpenSSH's own sftp-server (an
# sshd on loopback started here), interleaved, medians. See bench/sftp_bench.py for the
# workloads and docs/BENCHMARKS.md, "SFTP".
#   bench/sftp.sh                                 # everything (about 5 minutes)
#   bench/sftp.sh --only big --rounds 3
# Options go to bench/sftp_bench.py (--rounds, --files, --sessions, --entries,
# --only big,small,list,idle).
# BENCH_DIR (default /dev/shm/ftp-actor-bench-sftp) holds both servers' files and a 1 GiB
# source file. Needs root (sshd); installs openssh-server from Debian when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/dev/shm/ftp-actor-bench-sftp}
if [[ ! -x /usr/sbin/sshd || ! -x /usr/lib/openssh/sftp-server ]]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
fi
cargo build --release --quiet --bin ftp-actor
mkdir -p "$BENCH_DIR"
python3 bench/sftp_bench.py --work "$BENCH_DIR" "$@"
