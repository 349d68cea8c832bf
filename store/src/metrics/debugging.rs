//! etcd's `etcd_debugging_*` families (MVCC, lease, watch, auth and the v2 store) under
//! etcd 3.5's names, types, labels and buckets: etcd's own dashboards and many third-party
//! ones graph them (keys, revisions, watchers, lease churn), so they are not optional.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use super::register;

gauge!(
    /// The store's newest revision (set from the store when scraped).
    CURRENT_REVISION,
    "etcd_debugging_mvcc_current_revision",
    "The current revision of store."
);
gauge!(
    /// The revision history is compacted up to (set from the store when scraped).
    COMPACT_REVISION,
    "etcd_debugging_mvcc_compact_revision",
    "The revision of the last compaction in store."
);
counter!(
    /// Rows (old revisions) a compaction deleted from the backend.
    DB_COMPACTION_KEYS,
    "etcd_debugging_mvcc_db_compaction_keys_total",
    "Total number of db keys compacted."
);
gauge!(
    /// When the last compaction ran (unix seconds); 0 until one runs after start.
    DB_COMPACTION_LAST,
    "etcd_debugging_mvcc_db_compaction_last",
    "The unix time of the last db compaction. Resets to 0 on start."
);
histogram!(
    /// Time a compaction takes, index and rows together (oxcd compacts both in the apply).
    DB_COMPACTION_TOTAL_MS,
    "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    "Bucketed histogram of db compaction total duration.",
    100.0,
    2.0,
    14
);
histogram!(
    /// Time the in-memory key index is locked to drop compacted revisions.
    INDEX_COMPACTION_PAUSE_MS,
    "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
    "Bucketed histogram of index compaction pause duration.",
    0.5,
    2.0,
    12
);
counter!(
    /// Ranges served; etcd 3.5 keeps this debugging twin of `etcd_mvcc_range_total`.
    DEBUGGING_RANGE,
    "etcd_debugging_mvcc_range_total",
    "Total number of ranges seen by this member."
);
gauge!(
    /// Bytes of keys and values put since start (etcd sums `len(key) + len(value)`).
    TOTAL_PUT_SIZE,
    "etcd_debugging_mvcc_total_put_size_in_bytes",
    "The total size of put kv pairs seen by this member."
);
counter!(
    /// Events handed to watch clients.
    WATCH_EVENTS,
    "etcd_debugging_mvcc_events_total",
    "Total number of events sent by this member."
);
gauge!(
    /// Events queued for watch clients and not yet sent (see `PendingEvents`).
    PENDING_EVENTS,
    "etcd_debugging_mvcc_pending_events_total",
    "Total number of pending events to be sent."
);
gauge!(
    /// Open watch streams.
    WATCH_STREAMS,
    "etcd_debugging_mvcc_watch_stream_total",
    "Total number of watch streams."
);
gauge!(
    /// Watchers on all streams.
    WATCHERS,
    "etcd_debugging_mvcc_watcher_total",
    "Total number of watchers."
);
gauge!(
    /// Watchers replaying history (new ones starting in the past, and those whose client
    /// read too slowly to keep up): etcd's unsynced group.
    SLOW_WATCHERS,
    "etcd_debugging_mvcc_slow_watcher_total",
    "Total number of unsynced slow watchers."
);
counter!(
    /// Leases granted (applied grants).
    LEASE_GRANTED,
    "etcd_debugging_lease_granted_total",
    "The total number of granted leases."
);
counter!(
    /// Leases revoked (by a client or on expiry).
    LEASE_REVOKED,
    "etcd_debugging_lease_revoked_total",
    "The total number of revoked leases."
);
counter!(
    /// Keep-alives the leader served.
    LEASE_RENEWED,
    "etcd_debugging_lease_renewed_total",
    "The number of renewed leases seen by the leader."
);
histogram!(
    /// The TTLs leases are granted with (after the minimum TTL is applied).
    LEASE_TTL,
    "etcd_debugging_lease_ttl_total",
    "Bucketed histogram of lease TTLs.",
    1.0,
    2.0,
    24
);
counter!(
    /// Expired leases the leader revoked.
    LEASE_EXPIRED,
    "etcd_debugging_server_lease_expired_total",
    "The total number of expired leases."
);
gauge!(
    /// The auth store's revision, which every auth change bumps.
    AUTH_REVISION,
    "etcd_debugging_auth_revision",
    "The current revision of auth store."
);

/// v2 store reads by action (`get`, `getRecursive`), as etcd's v2 store counts them.
pub static V2_READS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_debugging_store_reads_total",
                "Total number of reads action by (get/getRecursive), local to this member.",
            ),
            &["action"],
        )
        .expect("valid metric"),
    )
});
/// v2 store writes by action (`set`, `create`, `update`, `delete`, `compareAndSwap`, ...).
pub static V2_WRITES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_debugging_store_writes_total",
                "Total number of writes (e.g. set/compareAndDelete) seen by this member.",
            ),
            &["action"],
        )
        .expect("valid metric"),
    )
});
counter!(
    /// v2 keys whose TTL ran out.
    V2_EXPIRES,
    "etcd_debugging_store_expires_total",
    "Total number of expired keys."
);
counter!(
    /// v2 watch requests.
    V2_WATCH_REQUESTS,
    "etcd_debugging_store_watch_requests_total",
    "Total number of incoming watch requests (new or reestablished)."
);
gauge!(
    /// v2 watchers waiting (set from the store when scraped).
    V2_WATCHERS,
    "etcd_debugging_store_watchers",
    "Count of currently active watchers."
);

/// Counts a response's events as pending from when it is queued for a watch client until
/// it is dropped (sent, or its stream gone), so the gauge cannot drift.
#[derive(Debug)]
pub struct PendingEvents(i64);

impl PendingEvents {
    /// Counts `events` events as pending.
    pub fn new(events: usize) -> PendingEvents {
        let n = i64::try_from(events).unwrap_or(i64::MAX);
        PENDING_EVENTS.add(n);
        PendingEvents(n)
    }
}

impl Clone for PendingEvents {
    fn clone(&self) -> PendingEvents {
        PENDING_EVENTS.add(self.0);
        PendingEvents(self.0)
    }
}

impl Drop for PendingEvents {
    fn drop(&mut self) {
        PENDING_EVENTS.sub(self.0);
    }
}

/// Makes every family of this module appear in `/metrics` before its first event.
pub(super) fn touch() {
    let _ = (&*CURRENT_REVISION, &*COMPACT_REVISION, &*DB_COMPACTION_KEYS, &*DB_COMPACTION_LAST);
    let _ = (&*DB_COMPACTION_TOTAL_MS, &*INDEX_COMPACTION_PAUSE_MS, &*DEBUGGING_RANGE);
    let _ = (&*TOTAL_PUT_SIZE, &*WATCH_EVENTS, &*PENDING_EVENTS, &*WATCH_STREAMS, &*WATCHERS);
    let _ = (&*SLOW_WATCHERS, &*LEASE_GRANTED, &*LEASE_REVOKED, &*LEASE_RENEWED, &*LEASE_TTL);
    let _ = (&*LEASE_EXPIRED, &*AUTH_REVISION, &*V2_READS, &*V2_WRITES, &*V2_EXPIRES);
    let _ = (&*V2_WATCH_REQUESTS, &*V2_WATCHERS);
}
