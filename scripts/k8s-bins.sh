#!/usr/bin/env bash
# Builds the reference binaries that the Kubernetes tests (tests/k8s) and the etcd 3.6
# differential tests run, from source, with the local Go toolchain and the Go module proxy:
#   - kube-apiserver, kube-controller-manager, kubectl   k8s.io/kubernetes  $K8S_VERSION
#   - etcd, etcdctl, etcdutl                             go.etcd.io/etcd    $ETCD_VERSION
#   - helm                                               helm.sh/helm/v4    $HELM_VERSION
# into ~/.cache/oxcd/k8s/<name>-<version>/ (override the root with OXCD_K8S_CACHE).
#
# Idempotent: a set whose directory holds a `.complete` stamp and all of its binaries is not
# rebuilt, so a warm run only checks and exits. Nothing is downloaded by hand: `go build` fetches
# modules from the Go module proxy (GOMODCACHE/GOCACHE stay at Go's defaults, outside the clone).
#
# Why wrapper modules: k8s.io/kubernetes and etcd's commands replace their sibling modules with
# local paths in their own go.mod, so they cannot be `go install`ed. Each set gets a tiny generated
# module under $OXCD_K8S_CACHE/src/ that requires the release and (for Kubernetes) replaces every
# staging module named in the release's go.mod with its matching v0.X.Y release. Nothing of it
# lives in the repository.
#
# Usage: scripts/k8s-bins.sh            build what is missing, print `set=directory` lines
#        scripts/k8s-bins.sh --print    only print the lines of the sets already built (exit 1
#                                       if one is missing); the tests find the binaries this way
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.17}"
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE="${OXCD_K8S_CACHE:-$HOME/.cache/oxcd/k8s}"

die() { echo "k8s-bins.sh: ERROR: $*" >&2; exit 1; }
log() { echo "k8s-bins.sh: $*" >&2; }

K8S_DIR="$CACHE/kubernetes-$K8S_VERSION"
ETCD_DIR="$CACHE/etcd-$ETCD_VERSION"
HELM_DIR="$CACHE/helm-$HELM_VERSION"
K8S_BINS=(kube-apiserver kube-controller-manager kubectl)
ETCD_BINS=(etcd etcdctl etcdutl)
HELM_BINS=(helm)

# complete DIR BIN... : the set in DIR is built and whole.
complete() {
    local dir="$1"; shift
    [ -f "$dir/.complete" ] || return 1
    local b
    for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

if [ "${1:-}" = "--print" ]; then
    ok=0
    complete "$K8S_DIR" "${K8S_BINS[@]}" && echo "kubernetes=$K8S_DIR" || ok=1
    complete "$ETCD_DIR" "${ETCD_BINS[@]}" && echo "etcd=$ETCD_DIR" || ok=1
    complete "$HELM_DIR" "${HELM_BINS[@]}" && echo "helm=$HELM_DIR" || ok=1
    exit "$ok"
fi

command -v go >/dev/null 2>&1 || die "go not found on PATH (Go 1.26 is needed to build the reference binaries)"
go_minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
[ -n "$go_minor" ] && [ "$go_minor" -ge 26 ] || die "Go >= 1.26 needed, found $(go env GOVERSION)"

# -mod=mod lets `go build` complete the wrapper's go.mod/go.sum from the proxy; the local
# toolchain is used as is (no toolchain download); CGO off gives static binaries, as the
# projects' own release builds do.
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

# build_set NAME VERSION OUT_DIR GO_MOD_BODY LDFLAGS PKG... : writes the wrapper module, builds
# every PKG with one `go build` (so shared packages compile once) into OUT_DIR, stamps it.
build_set() {
    local name="$1" version="$2" out="$3" gomod="$4" ldflags="$5"; shift 5
    local src="$CACHE/src/$name-$version"
    mkdir -p "$src"
    printf '%s\n' "$gomod" >"$src/go.mod"
    # go needs a package in the main module to accept the build; a blank file is enough.
    printf 'package wrapper\n' >"$src/wrapper.go"
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    log "building $name $version (go build $*) ..."
    local start end
    start="$(date +%s)"
    (cd "$src" && nice -n 5 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" "$@") \
        || die "go build of $name $version failed (wrapper module in $src)"
    end="$(date +%s)"
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((end - start))s with $(go env GOVERSION)" >"$out/.complete"
    log "built $name $version in $((end - start))s -> $out"
}

# ---- Kubernetes ----------------------------------------------------------------------------------
if ! complete "$K8S_DIR" "${K8S_BINS[@]}"; then
    kver="${K8S_VERSION#v}"
    kmajor="${kver%%.*}"; rest="${kver#*.}"; kminor="${rest%%.*}"; kpatch="${rest#*.}"
    staging_version="v0.$kminor.$kpatch"
    modfile="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
    [ -f "$modfile" ] || die "cannot download k8s.io/kubernetes@$K8S_VERSION's go.mod"
    staging="$(sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*#\1#p' "$modfile")"
    [ -n "$staging" ] || die "no staging modules found in $modfile"
    gomod="module oxcd.invalid/k8s-bins

go 1.26

require k8s.io/kubernetes $K8S_VERSION

replace ("
    for m in $staging; do gomod+="
	$m => $m $staging_version"; done
    gomod+="
)"
    ldflags="-s -w"
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$kmajor -X $pkg.gitMinor=$kminor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    done
    build_set kubernetes "$K8S_VERSION" "$K8S_DIR" "$gomod" "$ldflags" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kubectl
fi
# Whether a command's output contains a line starting with the expected text. The output is
# read whole first: with pipefail, `cmd | grep -q` fails at random when grep exits on its first
# match and the command dies of SIGPIPE writing the rest (seen with etcd --version).
reports() {
    local out
    out="$($1 2>&1)" || return 1
    grep -q "^$2" <<<"$out"
}

reports "$K8S_DIR/kube-apiserver --version" "Kubernetes $K8S_VERSION" \
    || die "$K8S_DIR/kube-apiserver does not report $K8S_VERSION"

# ---- etcd 3.6 ------------------------------------------------------------------------------------
if ! complete "$ETCD_DIR" "${ETCD_BINS[@]}"; then
    gomod="module oxcd.invalid/etcd-bins

go 1.26

require ("
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3 etcdctl/v3 etcdutl/v3; do gomod+="
	go.etcd.io/etcd/$m $ETCD_VERSION"; done
    gomod+="
)"
    build_set etcd "$ETCD_VERSION" "$ETCD_DIR" "$gomod" "-s -w" \
        go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3
    # go build names a binary after its path's element before the /v3 suffix: etcd's is "server".
    mv "$ETCD_DIR/server" "$ETCD_DIR/etcd" || die "etcd server binary missing in $ETCD_DIR"
fi
reports "$ETCD_DIR/etcd --version" "etcd Version: ${ETCD_VERSION#v}" \
    || die "$ETCD_DIR/etcd does not report $ETCD_VERSION"

# ---- helm v4 -------------------------------------------------------------------------------------
if ! complete "$HELM_DIR" "${HELM_BINS[@]}"; then
    gomod="module oxcd.invalid/helm-bins

go 1.26

require helm.sh/helm/v4 $HELM_VERSION"
    build_set helm "$HELM_VERSION" "$HELM_DIR" "$gomod" \
        "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
        helm.sh/helm/v4/cmd/helm
fi
reports "$HELM_DIR/helm version --short" "$HELM_VERSION" \
    || die "$HELM_DIR/helm does not report $HELM_VERSION"

echo "kubernetes=$K8S_DIR"
echo "etcd=$ETCD_DIR"
echo "helm=$HELM_DIR"
