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
step "podman service (second engine of the matrix)"
podman_socket=$(scripts/podman-up.sh)
step "fixture images (docker and podman)"
CLW_PODMAN_FIXTURES=1 scripts/build-fixtures.sh

step "OpenClaw gateway (tests/openclaw_real_engine.rs runs the real package)"
# Pinned Node 24 and openclaw from npm, cached under target/openclaw-cache; the test fails
# without them under CLW_TEST_REQUIRE_ENGINE=1.
openclaw_env=$(scripts/openclaw-up.sh)
while IFS='=' read -r key value; do
    case "$key" in
    CLW_NODE_DIR | CLW_OPENCLAW_BIN) export "$key=$value" ;;
    esac
done <<<"$openclaw_env"

step "systemd-analyze (tests/systemd_units.rs verifies the unit files with it)"
# Works without a running systemd; Debian's systemd package ships it.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

step "unshare, setpriv, mountpoint (tests/unit_restrictions_engine.rs reproduces a unit's restrictions)"
# util-linux is essential on Debian; this only repairs a trimmed image.
if ! command -v setpriv >/dev/null 2>&1 || ! command -v unshare >/dev/null 2>&1 || ! command -v mountpoint >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends util-linux >/dev/null
fi

step "promtool (tests/agent_engine.rs checks a live scrape with it)"
# Debian's prometheus package ships promtool; the server it also installs is not started.
if ! command -v promtool >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

step "packaging tools (tests/deb_install.rs builds, checks and installs the .deb)"
# dpkg-deb comes with dpkg; strip and objdump (binutils) usually come with the linker; man-db
# checks the generated man pages the way lintian does; useradd (passwd) makes the test's owner.
missing=()
command -v strip >/dev/null 2>&1 && command -v objdump >/dev/null 2>&1 || missing+=(binutils)
command -v man >/dev/null 2>&1 || missing+=(man-db)
command -v useradd >/dev/null 2>&1 || missing+=(passwd)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export CLW_TEST_REQUIRE_ENGINE=1
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo test --all-targets (docker)"
cargo test --all-targets

# The main job end to end, as `make demo` runs it: a demo fortress applied and verified.
step "demo"
scripts/demo.sh

# The engine-facing integration tests again, unchanged, against Podman's compat API: the same
# tests, a matrix, not a copy: every target that talks to an engine (`require_engine()`).
PODMAN_MATRIX=(apply_engine verify_engine agent_engine seccomp_engine heal_engine doctor_status_engine
    openclaw_harden_engine secrets_not_logged_engine ownership_engine readme_usage egress_engine
    broker_engine unit_restrictions_engine harness_smoke)
# Whole targets that run on Docker only, each with its reason (tests/harness_smoke.rs checks that
# every engine-facing target is in one of the two lists).
DOCKER_ONLY_TARGETS=(
    # The real OpenClaw gateway with its `docker` sandbox backend, which drives the docker CLI;
    # its `podman` backend is another code path of OpenClaw's, not covered yet.
    openclaw_real_engine
    # Installs the .deb into this machine's dpkg database; the engine is only doctor's to reach,
    # and doctor's engine checks run on both engines in doctor_status_engine.
    deb_install
)
for t in "${DOCKER_ONLY_TARGETS[@]}"; do echo "DOCKER-ONLY TARGET (not run on podman): $t" >&2; done
step "engine matrix on podman: ${PODMAN_MATRIX[*]}"
matrix_args=()
for t in "${PODMAN_MATRIX[@]}"; do matrix_args+=(--test "$t"); done
# Tests that exercise something Podman does not have run on Docker only, and are skipped here by
# name (reported as filtered out, never as passed).
DOCKER_ONLY=(
    # restarts a private dockerd of its own
    the_agent_rides_out_an_engine_restart_and_keeps_limiting
)
skip_args=()
for t in "${DOCKER_ONLY[@]}"; do
    echo "DOCKER-ONLY (not run on podman): $t" >&2
    skip_args+=(--skip "$t")
done
DOCKER_HOST="$podman_socket" cargo test "${matrix_args[@]}" -- "${skip_args[@]}"
