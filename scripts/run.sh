#!/usr/bin/env bash
# Runs a single-member oxcd with etcd's defaults: clients on localhost:2379, peers on
# localhost:2380, data in ./default.oxcd. Extra arguments are passed to oxcd (etcd's flags).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" --build-only
cargo build --release --manifest-path "$root/Cargo.toml" -p oxcd
exec "${CARGO_TARGET_DIR:-$root/target}/release/oxcd" "$@"
