#!/usr/bin/env bash
# Builds the oxcd image from the Dockerfile with buildah, which needs no Docker daemon:
#   scripts/build-image.sh [--local-bases] [TAG]        (TAG default: oxcd:<workspace version>)
# --local-bases: where no container registry is reachable (as in the project's sandbox), first
# make the two base images locally and build from them without pulling:
#   localhost/debian:bookworm-slim   debootstrap --variant=minbase bookworm
#   localhost/oxcd-rust:local        that + gcc/g++ + this machine's Rust toolchain
# Containers run with --isolation chroot (the sandbox's hybrid cgroups refuse crun) and the
# host network (for apt-get and crates.io). Cargo's registry and a target dir under
# ~/.cache/oxcd are mounted into the build so a second build is incremental.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
local_bases=false
if [ "${1:-}" = "--local-bases" ]; then local_bases=true; shift; fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
tag=${1:-oxcd:$version}
log() { echo "build-image.sh: $*" >&2; }

need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
$local_bases && ! command -v debootstrap >/dev/null 2>&1 && need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
B=(buildah --storage-driver=overlay)
args=()
if $local_bases; then
    runtime=localhost/debian:bookworm-slim
    rust=localhost/oxcd-rust:local
    if ! "${B[@]}" inspect --type image "$runtime" >/dev/null 2>&1; then
        rootfs=$(mktemp -d /var/tmp/oxcd-rootfs.XXXXXX)
        log "debootstrap bookworm into $rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
        c=$("${B[@]}" from scratch)
        mnt=$("${B[@]}" mount "$c")
        cp -a "$rootfs/." "$mnt/"
        "${B[@]}" umount "$c" >/dev/null
        "${B[@]}" commit -q "$c" "$runtime" >/dev/null
        "${B[@]}" rm "$c" >/dev/null
        rm -rf "$rootfs"
    fi
    if ! "${B[@]}" inspect --type image "$rust" >/dev/null 2>&1; then
        sysroot=$(rustc --print sysroot)
        log "making $rust from $runtime and the toolchain at $sysroot"
        c=$("${B[@]}" from --pull=never "$runtime")
        "${B[@]}" run --isolation chroot --network host "$c" -- sh -c \
            'apt-get update -q && apt-get install -y -q --no-install-recommends ca-certificates gcc g++ libc6-dev make' >/dev/null
        mnt=$("${B[@]}" mount "$c")
        mkdir -p "$mnt/usr/local/rust"
        cp -a "$sysroot/." "$mnt/usr/local/rust/"
        # This machine's extra CA certificates (an egress proxy's), without which crates.io
        # is not reachable from the build.
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            cp /usr/local/share/ca-certificates/*.crt "$mnt/usr/local/share/ca-certificates/"
        fi
        "${B[@]}" umount "$c" >/dev/null
        "${B[@]}" run --isolation chroot "$c" -- update-ca-certificates >/dev/null
        "${B[@]}" config --env PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env CARGO_HOME=/usr/local/cargo "$c"
        "${B[@]}" commit -q "$c" "$rust" >/dev/null
        "${B[@]}" rm "$c" >/dev/null
    fi
    args+=(--pull=never --build-arg "RUST_IMAGE=$rust" --build-arg "RUNTIME_IMAGE=$runtime")
fi
cache=$HOME/.cache/oxcd/image-build
mkdir -p "$cache/target" "$cache/registry"
log "building $tag"
"${B[@]}" bud --isolation chroot --network host "${args[@]}" \
    -v "$cache/target:/src/target" -v "$cache/registry:/usr/local/cargo/registry" \
    -t "$tag" "$root"
# The image runs: oxcd as a non-root user, the operator beside it.
c=$("${B[@]}" from --pull=never "$tag")
trap '"${B[@]}" rm "$c" >/dev/null' EXIT
"${B[@]}" run --isolation chroot "$c" -- oxcd --version
"${B[@]}" run --isolation chroot "$c" -- oxcd-operator --version
"${B[@]}" run --isolation chroot "$c" -- id -u
log "built $tag"
