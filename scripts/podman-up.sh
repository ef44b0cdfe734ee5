#!/usr/bin/env bash
# Bring up a Podman API service for the engine test matrix: install Podman from Debian's
# packages if missing, write the containers.conf these machines need, start
# `podman system service` on its own socket, and wait until it answers.
#
# Measured quirks (Podman 4.3.1, environment.md): without CAP_SYS_RESOURCE the default
# ulimits fail ("setrlimit RLIMIT_NOFILE: Operation not permitted") and crun refuses the hybrid
# cgroup layout, so the service runs with `default_ulimits = []` and runc, from a test-owned
# CONTAINERS_CONF rather than an edited /etc.
#
# Prints the socket URL on stdout. Idempotent.
set -euo pipefail

dir=${CLW_PODMAN_DIR:-/run/clw-podman}
sock="$dir/podman.sock"
say() { printf 'podman-up: %s\n' "$*" >&2; }

if ! command -v podman >/dev/null 2>&1; then
    say "installing podman"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman crun uidmap slirp4netns fuse-overlayfs >/dev/null
fi
# Sandboxes run with `init: true` by default; Podman's init is catatonit, only a recommendation
# of the podman package.
if [ ! -x /usr/libexec/podman/catatonit ]; then
    say "installing catatonit (podman's init)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends catatonit >/dev/null
fi

command -v curl >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null
}

mkdir -p "$dir"
cat >"$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF

answers() { curl -sf --unix-socket "$sock" http://podman/_ping >/dev/null 2>&1; }

if ! answers; then
    rm -f "$sock"
    say "starting podman system service on $sock"
    CONTAINERS_CONF="$dir/containers.conf" setsid nohup \
        podman system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 &
    for _ in $(seq 1 100); do
        answers && break
        sleep 0.2
    done
    if ! answers; then
        say "podman service did not answer on $sock"
        tail -n 30 "$dir/service.log" >&2 || true
        exit 1
    fi
fi
say "podman $(podman --version | awk '{print $3}') answers on $sock"
echo "unix://$sock"
