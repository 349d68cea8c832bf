#!/usr/bin/env bash
# Runs the Procfile's 3-member cluster in the foreground without goreman; Ctrl-C stops it.
# Usage: scripts/local-cluster.sh [path/to/oxcd]
#   (default: $CARGO_TARGET_DIR/release/oxcd, or target/release/oxcd; built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/oxcd}
if [ ! -x "$bin" ]; then
  cargo build --release -p oxcd
fi
bin=$(realpath "$bin")
data=${OXCD_CLUSTER_DIR:-$(mktemp -d -t oxcd-cluster.XXXX)}
echo "data under $data"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  name=${line%%:*}
  cmd=${line#*: }
  cmd=${cmd/target\/release\/oxcd/$bin}
  mkdir -p "$data/$name"
  (cd "$data/$name" && eval "exec $cmd" 2>&1 | sed -u "s/^/[$name] /") &
  pids+=($!)
done < Procfile
wait
