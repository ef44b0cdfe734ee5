#!/usr/bin/env bash
# Make sure a Docker engine answers at /var/run/docker.sock and that a static busybox is on the
# host (the fixture images are built from it).
#
# On a fresh machine: installs docker.io and busybox-static from Debian, starts dockerd in the
# background (it outlives this script) and waits for it. On a machine where all of this is
# already done it only checks, so it is safe to run before every test run.
#
# There is no init system to lean on: dockerd is started by hand, its log goes to
# ${TMPDIR:-/tmp}/clw-dockerd.log. CLW_DOCKERD_PIDFILE (default /var/run/docker.pid) exists so
# the start-up path can be exercised with stand-in binaries next to a running daemon.
set -euo pipefail

SOCK=/var/run/docker.sock
PIDFILE=${CLW_DOCKERD_PIDFILE:-/var/run/docker.pid}
LOG="${TMPDIR:-/tmp}/clw-dockerd.log"
WAIT_SECS=60

say() { printf 'engine-up: %s\n' "$*" >&2; }
up() { printf 'engine-up: docker engine %s answers at unix://%s\n' "$1" "$SOCK"; }

# The docker CLI in /usr/local/bin is newer than Debian's daemon (API 1.41); it negotiates the
# API version down on its own, so the plain CLI is the check.
server_version() {
    DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}' 2>/dev/null
}

# True when $1 is a statically linked executable. `file` may be missing on a fresh machine;
# `ldd` (libc-bin) is always there and says "not a dynamic executable" for static binaries.
is_static() {
    local f=$1
    [ -x "$f" ] || return 1
    if command -v file >/dev/null 2>&1; then
        file -L "$f" | grep -Eq 'statically linked|static-pie linked'
    else
        ! ldd "$f" >/dev/null 2>&1
    fi
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
is_static /bin/busybox || missing+=(busybox-static)

if [ "${#missing[@]}" -gt 0 ]; then
    # Deduplicate (docker.io may be listed twice).
    mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [ "$(id -u)" -ne 0 ]; then
        say "missing ${pkgs[*]} and not root: install them, then run this again"
        exit 1
    fi
    say "installing ${pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    is_static /bin/busybox || { say "/bin/busybox is still not a static executable"; exit 1; }
    command -v dockerd >/dev/null 2>&1 || { say "dockerd still missing after installing docker.io"; exit 1; }
fi

if v=$(server_version) && [ -n "$v" ]; then
    up "$v"
    exit 0
fi

# A dockerd that is still starting (or was started by someone else a moment ago) is waited for,
# not doubled: a second dockerd fails on the pid file and would only add noise to the log.
# dockerd writes its pid file early and removes a stale one itself.
dockerd_alive() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

started=""
if dockerd_alive; then
    say "dockerd (pid $(cat "$PIDFILE")) is running but not answering yet; waiting"
else
    say "starting dockerd (log: $LOG)"
    # setsid + nohup: the daemon must survive this script and the shell that ran it.
    setsid nohup dockerd --host "unix://$SOCK" >"$LOG" 2>&1 </dev/null &
    started=$!
fi

for _ in $(seq 1 "$WAIT_SECS"); do
    if v=$(server_version) && [ -n "$v" ]; then
        up "$v"
        exit 0
    fi
    # A daemon that exited (bad config, port or pid file in use) will not come up: say so now
    # instead of after the full wait.
    if [ -n "$started" ] && ! kill -0 "$started" 2>/dev/null && ! dockerd_alive; then
        say "dockerd exited during start-up; last lines of $LOG:"
        tail -n 40 "$LOG" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 1
done

say "dockerd did not answer within ${WAIT_SECS}s; last lines of $LOG:"
tail -n 40 "$LOG" >&2 2>/dev/null || say "(no log at $LOG)"
exit 1
