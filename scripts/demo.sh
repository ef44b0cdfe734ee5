#!/usr/bin/env bash
# The demo (`make demo`): bring up a real engine, build clw-fortress, copy the throwaway
# OpenClaw home of examples/demo/ to a temporary directory, and show the fortress being
# validated, planned, applied, re-planned (nothing to do) and used, with the inspect
# highlights that matter. Set CLW_DEMO_KEEP=1 to leave the sandbox running afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "engine and images"
scripts/engine-up.sh
scripts/build-fixtures.sh

step "build clw-fortress"
cargo build --quiet
bin="$repo/target/debug/clw-fortress"

# Not under /tmp: binds without a target keep their host path inside the sandbox, and the
# sandbox's own /tmp is a tmpfs they would nest in.
mkdir -p "$repo/target"
demo_home=$(mktemp -d "$repo/target/demo-home.XXXXXX")
cp -a examples/demo/home/. "$demo_home/"
# Git keeps no modes: set the ones the manifest rules demand of a secrets file.
chmod 700 "$demo_home/.config/openclaw-secrets"
chmod 600 "$demo_home/.config/openclaw-secrets/secrets.env"
# The state directory belongs to the user the sandbox runs as (user: "1000:1000").
chown -R 1000:1000 "$demo_home/.openclaw"
export HOME="$demo_home"
manifest="$repo/examples/demo/fortress.yaml"
fortress() { run "$bin" -f "$manifest" "$@"; }

cleanup() {
    if [ "${CLW_DEMO_KEEP:-0}" != 1 ]; then
        docker rm -f openclaw-demo-main >/dev/null 2>&1 || true
        rm -rf "$demo_home"
    else
        echo "kept: sandbox openclaw-demo-main, demo home $demo_home"
    fi
}
trap cleanup EXIT
# A previous demo kept with CLW_DEMO_KEEP=1 points at another home: start clean.
docker rm -f openclaw-demo-main >/dev/null 2>&1 || true

step "validate (no engine needed)"
fortress validate

step "plan before apply"
fortress plan

step "apply"
fortress apply

step "plan after apply: nothing to do"
fortress plan

step "inspect highlights"
docker inspect openclaw-demo-main --format \
'read-only root: {{.HostConfig.ReadonlyRootfs}}
cap drop:       {{.HostConfig.CapDrop}}
cap add:        {{.HostConfig.CapAdd}}
network:        {{.HostConfig.NetworkMode}}
privileged:     {{.HostConfig.Privileged}}
memory:         {{.HostConfig.Memory}} bytes (swap {{.HostConfig.MemorySwap}})
cpus:           {{.HostConfig.NanoCpus}} nano-cpus
pids:           {{.HostConfig.PidsLimit}}
user:           {{.Config.User}}
tmpfs:          {{.HostConfig.Tmpfs}}'
echo "security opts:  $(docker inspect openclaw-demo-main --format '{{range .HostConfig.SecurityOpt}}{{printf "%.60s" .}} {{end}}')"
echo "mounts:"
docker inspect openclaw-demo-main --format '{{range .Mounts}}  {{if .RW}}rw{{else}}ro{{end}} {{.Destination}}{{"\n"}}{{end}}'

step "inside the sandbox"
fortress exec openclaw-demo-main -- sh -c '
  grep -E "^(NoNewPrivs|Seccomp|CapEff)" /proc/self/status
  echo "uid: $(id -u)"
  touch /etc/probe 2>/dev/null && echo "root fs: WRITABLE" || echo "root fs: read-only"
  echo "ANTHROPIC_API_KEY injected for this exec: ${#ANTHROPIC_API_KEY} characters"'
echo "the secret in docker inspect: $(docker inspect openclaw-demo-main | grep -c sk-ant-demo || true) occurrence(s)"

step "what the agent can see of ~/.openclaw"
fortress exec openclaw-demo-main -- sh -c "ls -a '$demo_home/.openclaw'"

step "verify: prove the isolation from inside and outside the sandbox"
fortress verify
