#!/usr/bin/env bash
# The cluster mode side by side with rclone, on a real three-node Garage and a real PostgreSQL
# started here (scripts/garage.sh, scripts/postgres.sh), in one run. See docs/BENCHMARKS.md,
# "The cluster mode".
#   bench/cluster.sh                          # everything, 3 rounds (about 10 minutes)
#   bench/cluster.sh --only big --size-mib 256 --repeats 2
# Options are passed to bench/cluster.py. BENCH_DIR (default /var/tmp/ftp-actor-cluster-bench, on disk)
# holds Garage's nodes, the database and the instances' files; it is removed at the end of a
# run that succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/var/tmp/ftp-actor-cluster-bench}
command -v rclone >/dev/null || { apt-get update -qq && apt-get install -y -qq rclone >/dev/null; }
cargo build --release --quiet --bin ftp-actor --example loadgen
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
chmod 755 "$BENCH_DIR"
stop() {
  local status=$?
  scripts/garage.sh stop "$BENCH_DIR/garage" || true
  scripts/postgres.sh stop "$BENCH_DIR/postgres" || true
  # Kept when the run failed, for its logs.
  [[ $status -ne 0 ]] || rm -rf "$BENCH_DIR"
}
trap stop EXIT
scripts/garage.sh start "$BENCH_DIR/garage" > "$BENCH_DIR/garage.env"
scripts/postgres.sh start "$BENCH_DIR/postgres" > "$BENCH_DIR/postgres.env"
set -a
# shellcheck disable=SC1091
source "$BENCH_DIR/garage.env"
# shellcheck disable=SC1091
source "$BENCH_DIR/postgres.env"
set +a
unset AWS_CA_BUNDLE
cat > "$BENCH_DIR/shared.toml" <<TOML
[state]
backend = "postgres"

[state.postgres]
url = "$FTP_ACTOR_PG_URL"

[storage]
backend = "s3"

[storage.s3]
endpoint = "$FTP_ACTOR_S3_ENDPOINT"
bucket = "$FTP_ACTOR_S3_BUCKET"
region = "$AWS_REGION"
TOML
# rclone's remote, from the environment: the same endpoint, bucket and key.
export RCLONE_CONFIG_GARAGE_TYPE=s3 RCLONE_CONFIG_GARAGE_PROVIDER=Other RCLONE_CONFIG_GARAGE_ENV_AUTH=true \
  RCLONE_CONFIG_GARAGE_ENDPOINT=$FTP_ACTOR_S3_ENDPOINT RCLONE_CONFIG_GARAGE_REGION=$AWS_REGION
python3 bench/cluster.py --work "$BENCH_DIR" --shared-config "$BENCH_DIR/shared.toml" --bucket "$FTP_ACTOR_S3_BUCKET" "$@"
