#!/usr/bin/env bash
# The one test command (`make test`): bring up a real engine, build the fixture images, then
# formatting, lints, unit and integration tests. Integration tests talk to the real engine and
# fail (never skip) when it is missing: CLW_TEST_REQUIRE_ENGINE=1 says so to them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "test: cargo not found; install the Rust toolchain (rustup) and run this again" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*" >&2; }

step "engine"
scripts/engine-up.sh
step "fixture images"
scripts/build-fixtures.sh

step "systemd-analyze (tests/systemd_units.rs verifies the unit files with it)"
# Works without a running systemd; Debian's systemd package ships it.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

export CLW_TEST_REQUIRE_ENGINE=1
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo test --all-targets"
cargo test --all-targets
