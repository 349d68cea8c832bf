//! Backend, disk and snapshot families (`etcd_disk_*`, `etcd_mvcc_hash*`, `etcd_snap_*`,
//! `etcd_debugging_snap_*`) under etcd 3.5's names, types and buckets. oxcd's backend is
//! RocksDB and its raft snapshots are openraft's, so each doc says what is timed here.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntGauge};

use super::register;

histogram!(
    /// Time a defragment takes (a full RocksDB compaction of every column family).
    DEFRAG_DURATION,
    "etcd_disk_backend_defrag_duration_seconds",
    "The latency distribution of backend defragmentation.",
    0.1,
    2.0,
    13
);
gauge!(
    /// 1 while a defragment runs.
    DEFRAG_INFLIGHT,
    "etcd_disk_defrag_inflight",
    "Whether or not defrag is active on the member. 1 means active, 0 means not."
);
histogram!(
    /// Time to write the backend snapshot a `Snapshot` call streams.
    BACKEND_SNAPSHOT_DURATION,
    "etcd_disk_backend_snapshot_duration_seconds",
    "The latency distribution of backend snapshots.",
    0.01,
    2.0,
    17
);
gauge!(
    /// Bytes of raft log entries written (a gauge in etcd despite `_total`).
    WAL_WRITE_BYTES,
    "etcd_disk_wal_write_bytes_total",
    "Total number of bytes written in WAL."
);
histogram!(
    /// Time to write (and sync) a batch of raft log entries (etcd 3.6's WAL write; oxcd's
    /// log is a RocksDB column family whose write and sync are one call).
    WAL_WRITE_DURATION,
    "etcd_disk_wal_write_duration_seconds",
    "The latency distributions of write called by WAL.",
    0.001,
    2.0,
    14
);
histogram!(
    /// Time a `Hash` call takes.
    HASH_DURATION,
    "etcd_mvcc_hash_duration_seconds",
    "The latency distribution of storage hash operation.",
    0.01,
    2.0,
    15
);
histogram!(
    /// Time a `HashKV` call takes.
    HASH_REV_DURATION,
    "etcd_mvcc_hash_rev_duration_seconds",
    "The latency distribution of storage hash by revision operation.",
    0.01,
    2.0,
    15
);
histogram!(
    /// Time to build a raft snapshot (written and synced in one step, so etcd's separate
    /// marshalling and fsync phases have no counterpart).
    SNAP_SAVE_TOTAL,
    "etcd_debugging_snap_save_total_duration_seconds",
    "The total latency distributions of save called by snapshot.",
    0.001,
    2.0,
    14
);
histogram!(
    /// Time to sync a raft snapshot received from the leader to disk.
    SNAP_DB_FSYNC,
    "etcd_snap_db_fsync_duration_seconds",
    "The latency distributions of fsyncing .snap.db file",
    0.001,
    2.0,
    14
);
histogram!(
    /// Time to store a raft snapshot received from the leader (copy, sync, rename).
    SNAP_DB_SAVE_TOTAL,
    "etcd_snap_db_save_total_duration_seconds",
    "The total latency distributions of v3 snapshot save",
    0.1,
    2.0,
    10
);

/// Sets a gauge to 1 until dropped (in-progress gauges that must fall back on every path).
pub struct InFlight(&'static IntGauge);

impl InFlight {
    /// Marks `gauge` as in progress.
    pub fn start(gauge: &'static IntGauge) -> InFlight {
        gauge.set(1);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(0);
    }
}

/// Makes every family of this module appear in `/metrics` before its first event.
pub(super) fn touch() {
    let _ = (&*DEFRAG_DURATION, &*DEFRAG_INFLIGHT, &*BACKEND_SNAPSHOT_DURATION);
    let _ = (&*WAL_WRITE_BYTES, &*HASH_DURATION, &*HASH_REV_DURATION, &*SNAP_SAVE_TOTAL);
    let _ = (&*SNAP_DB_FSYNC, &*SNAP_DB_SAVE_TOTAL, &*WAL_WRITE_DURATION);
}
