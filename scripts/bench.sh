#!/usr/bin/env bash
# The benchmarks (`make bench`; not part of `make test`): bring up the Docker engine and the
# fixture images, build the release binary, run every figure against its baseline
# (bench/run.py), then render docs/BENCHMARKS.md from the raw results in target/bench/.
# CLW_BENCH_ONLY=exposure,sweep,heal,verify,backup runs a subset; CLW_BENCH_IDLE_S sets the
# footprint's idle time (default 120 s), CLW_BENCH_DB_MIB the backup database (default 1024).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

for tool in cargo python3 docker curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool not found" >&2; exit 1; }
done

step "engine and fixture images"
scripts/engine-up.sh
scripts/build-fixtures.sh

step "sqlite3 shell (the backup baseline)"
if ! command -v sqlite3 >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sqlite3 >/dev/null
fi

step "cargo build --release"
cargo build --release

step "figures"
python3 bench/run.py

step "docs/BENCHMARKS.md"
python3 bench/report.py
