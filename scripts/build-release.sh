#!/usr/bin/env bash
# Release build of the two binaries an oxcd image carries, `oxcd` and `oxcd-operator`, into
# OUT (default ./dist). The Dockerfile's build stage runs exactly this (and so should a test),
# so the image build and the checked build cannot drift apart.
#   scripts/build-release.sh [OUT]
# Installs only the build dependencies (scripts/install-deps.sh --build-only).
# OXCD_PROFILE=dev builds the debug profile instead (for a test, to reuse the test build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
"$root/scripts/install-deps.sh" --build-only
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
profile=${OXCD_PROFILE:-release}
case "$profile" in
    release) dir=release ;;
    dev) dir=debug ;;
    *) echo "build-release.sh: OXCD_PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac
cargo build --profile "$profile" --locked --manifest-path "$root/Cargo.toml" \
    -p oxcd --bin oxcd -p oxcd-operator --bin oxcd-operator
mkdir -p "$out"
for bin in oxcd oxcd-operator; do
    install -m 0755 "$CARGO_TARGET_DIR/$dir/$bin" "$out/$bin"
    # The release profile keeps line tables for profiling, most of it RocksDB's C++: 463 MB
    # for oxcd. Shipped without them (34 MB); the symbols stay, so --enable-pprof's
    # profiles still name functions.
    if [ "$profile" = release ]; then
        strip --strip-debug "$out/$bin"
    fi
done
# Both must start (a missing shared library shows here, not in the image's first pod).
"$out/oxcd" --version
"$out/oxcd-operator" --version
echo "build-release.sh: $out/oxcd $out/oxcd-operator"
