#!/usr/bin/env bash
# Build the local fixture images the integration tests and the demo run. There is no registry
# to pull from, so the image is made `FROM scratch` out of Debian's static busybox:
#
#   clw-fixture:busybox            busybox applets, root and `sandbox` (1000:1000) users,
#   openclaw-sandbox:bookworm-slim the same image under the name the example manifest uses
#
# The root filesystem goes in as one tarball through `ADD`, because `ADD` keeps the owners
# recorded in the tar (`COPY` would make /home/sandbox root-owned). The tarball is made
# reproducible (sorted, fixed mtimes), so a rebuild hits the build cache and takes well under
# a second. Needs a running engine and /bin/busybox: run scripts/engine-up.sh first.
set -euo pipefail

BUSYBOX=/bin/busybox
TAGS=(clw-fixture:busybox openclaw-sandbox:bookworm-slim)

say() { printf 'build-fixtures: %s\n' "$*" >&2; }

[ -x "$BUSYBOX" ] || { say "$BUSYBOX missing: run scripts/engine-up.sh (installs busybox-static)"; exit 1; }
# A dynamic busybox would start and then fail inside a scratch image with a confusing
# "no such file or directory" for its loader.
if command -v file >/dev/null 2>&1; then
    file -L "$BUSYBOX" | grep -Eq 'statically linked|static-pie linked' \
        || { say "$BUSYBOX is not statically linked (install busybox-static)"; exit 1; }
elif ldd "$BUSYBOX" >/dev/null 2>&1; then
    say "$BUSYBOX is dynamically linked (install busybox-static)"
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/clw-fixture.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
ctx="$work/ctx"
mkdir -p "$root" "$ctx"

# Merged-/usr layout: every applet in /bin, /sbin and /usr/{bin,sbin} point at it, so
# `#!/usr/bin/env sh` and absolute applet paths from scripts work.
mkdir -p "$root"/{bin,etc,usr,root,home/sandbox,agent-workspace,tmp,proc,sys,dev,run,var}
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
ln -s bin "$root/sbin"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
sandbox:x:1000:
nogroup:x:65534:
GROUP
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"
chmod 0755 "$root/home/sandbox" "$root/agent-workspace"
chown 1000:1000 "$root/home/sandbox" "$root/agent-workspace"

tar --sort=name --mtime=@0 --numeric-owner -C "$root" -cf "$ctx/rootfs.tar" .
touch -d @0 "$ctx/rootfs.tar"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar /
ENV PATH=/bin
LABEL org.opencontainers.image.title="clw-fortress test fixture (static busybox)"
CMD ["/bin/sh"]
DOCKERFILE
touch -d @0 "$ctx/Dockerfile"

tag_args=()
for t in "${TAGS[@]}"; do tag_args+=(-t "$t"); done
# The legacy builder of dockerd 20.10 prints a deprecation notice for BuildKit on every build;
# stderr is shown only when the build fails.
if ! id=$(DOCKER_BUILDKIT=0 docker build -q "${tag_args[@]}" "$ctx" 2>"$work/build.err"); then
    cat "$work/build.err" >&2
    say "docker build failed"
    exit 1
fi
say "built ${id#sha256:} as ${TAGS[*]}"

# The image must run as the sandbox user out of the box.
uid=$(docker run --rm --network none --user 1000:1000 clw-fixture:busybox id -u)
[ "$uid" = 1000 ] || { say "fixture image runs as uid '$uid', expected 1000"; exit 1; }

# The Podman half of the engine matrix (CLW_PODMAN_FIXTURES=1): the same root filesystem,
# imported rather than built (`podman build` with a RUN step failed on these machines, and
# import needs none). Podman names local images `localhost/<name>`; the compat API resolves
# the short names the manifests use to them.
if [ "${CLW_PODMAN_FIXTURES:-0}" = 1 ]; then
    export CONTAINERS_CONF=${CONTAINERS_CONF:-${CLW_PODMAN_DIR:-/run/clw-podman}/containers.conf}
    for t in "${TAGS[@]}"; do
        podman import --quiet --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
            "$ctx/rootfs.tar" "localhost/$t" >/dev/null
    done
    puid=$(podman run --rm --network none --user 1000:1000 localhost/clw-fixture:busybox id -u)
    [ "$puid" = 1000 ] || { say "podman fixture runs as uid '$puid', expected 1000"; exit 1; }
    say "imported the same root filesystem into podman as ${TAGS[*]}"
fi
