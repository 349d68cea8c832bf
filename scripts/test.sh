#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs (build dependencies, etcd 3.4
# and 3.5 reference binaries), checks formatting and lints, then runs every test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --without-go
# The Go source builds (Kubernetes, etcd 3.6, helm, the apiserver storage suites: ~8 minutes
# cold, a second when cached) run beside cargo's checks and build; the tests wait for them.
go_log=$(mktemp)
(scripts/k8s-bins.sh >/dev/null && scripts/k8s-storage-suite.sh >/dev/null) 2>"$go_log" &
go_builds=$!
trap 'kill "$go_builds" 2>/dev/null || true; rm -f "$go_log"' EXIT
# A target dir outside the clone lets a fresh CI clone reuse an earlier build on this machine.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/oxcd/target}
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build every target, the oxcd binary the end-to-end tests start among them"
# The whole workspace at once: a build of one package resolves features differently and would
# compile the dependencies a second time (measured: ~25 minutes on 2 cores).
cargo build --workspace --all-targets
echo "== the Go source builds"
if ! wait "$go_builds"; then
    cat "$go_log" >&2
    echo "scripts/k8s-bins.sh or scripts/k8s-storage-suite.sh failed" >&2
    exit 1
fi
cat "$go_log"
echo "== cargo test"
cargo test --workspace --no-fail-fast
echo "== fuzz: the HTTP/2 :authority shim (bounded; see fuzz/README.md)"
# Its own small crate (no RocksDB), built with the nightly toolchain by cargo-fuzz; skipped,
# with a note, where either is missing. OXCD_FUZZ_SECONDS=0 skips it.
fuzz_seconds=${OXCD_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" = 0 ]; then
  echo "skipped (OXCD_FUZZ_SECONDS=0)"
elif ! rustup run nightly rustc --version >/dev/null 2>&1 || ! cargo fuzz --version >/dev/null 2>&1; then
  echo "skipped: needs a nightly toolchain and cargo-fuzz (cargo install --locked cargo-fuzz)"
else
  (cd fuzz && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz" cargo +nightly fuzz run h2_authority -- \
    -max_total_time="$fuzz_seconds")
fi
