#!/usr/bin/env bash
# Build the container environment the image tests need, from nothing, on a Debian host
# with no Docker engine and no registry (see docs/deploy-runpod.md, "Testing the image").
#
#   tests/container/setup-podman.sh            # idempotent; ~2-3 min cold, seconds warm
#   eval "$(tests/container/setup-podman.sh --env)"   # print the exports only
#
# What it does, and why:
# - installs podman and its helpers when podman is missing (needs root and apt);
# - writes a private containers.conf and storage.conf under the cache dir: runc, because crun
#   fails on this host's cgroup layout; ulimits no higher than the host's hard limits, because
#   podman's defaults exceed them here and the container start fails with EPERM; a private
#   graphroot, so the host's podman state is never touched and a CI cache can keep the layers;
# - builds a Debian bookworm base with debootstrap (the stand-in for the registry base image,
#   same distribution as the default BASE_IMAGE) with this host's extra CA certificates, because
#   TLS to the package index goes through a proxy that re-signs certificates; the rootfs tarball
#   is cached, so a rerun only imports it.
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${BOOTSTRAP_CACHE_DIR:-$repo/.cache}/container"
base_name="${BOOTSTRAP_TEST_BASE:-localhost/bootstrap-base:bookworm}"
suite=bookworm

print_env() {
    printf 'export CONTAINERS_CONF=%q\n' "$cache/containers.conf"
    printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$cache/storage.conf"
    printf 'export BOOTSTRAP_TEST_BASE=%q\n' "$base_name"
}

if [[ "${1:-}" == "--env" ]]; then
    print_env
    exit 0
fi

log() { printf 'setup-podman: %s\n' "$*" >&2; }

install_packages() {
    if command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; then
        return
    fi
    if [[ "$(id -u)" != 0 ]]; then
        log "podman, runc or debootstrap is missing and this is not root: install" \
            "podman runc debootstrap fuse-overlayfs slirp4netns uidmap"
        exit 1
    fi
    log "installing podman and helpers"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        podman runc debootstrap fuse-overlayfs slirp4netns uidmap >/dev/null
}

write_configs() {
    mkdir -p "$cache/storage" "$cache/run"
    local nofile
    nofile="$(ulimit -Hn)"
    # A hard limit of "unlimited" cannot be written as a number; podman's own default is fine then.
    if [[ "$nofile" == unlimited ]]; then nofile=1048576; fi
    cat >"$cache/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    cat >"$cache/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "$cache/run"
CONF
}

# The Debian archive apt already uses on this host (it may be a mirror or a snapshot).
debian_mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local uri
    uri="$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ' || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base_tarball() {
    local tarball="$cache/base-$suite.tar"
    if [[ -s "$tarball" ]]; then
        return
    fi
    local rootfs="$cache/rootfs-$suite"
    rm -rf "$rootfs"
    log "debootstrap $suite from $(debian_mirror) (about a minute)"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$suite" "$rootfs" "$(debian_mirror)" >"$cache/debootstrap.log" 2>&1 \
        || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    # The proxy's CA, so pip and apt inside `RUN` can verify TLS.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >/dev/null
    fi
    # apt's package lists are stale the moment the tarball is cached; the Dockerfile updates them.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
}

main() {
    install_packages
    write_configs
    eval "$(print_env)"
    if podman image exists "$base_name"; then
        log "base image $base_name present"
    else
        build_base_tarball
        log "importing $cache/base-$suite.tar as $base_name"
        podman import --quiet "$cache/base-$suite.tar" "$base_name" >/dev/null
    fi
    print_env
}

main
