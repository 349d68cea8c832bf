//! Server, raft, backend and MVCC families under etcd's names, types, labels and buckets
//! (copied from etcd 3.5.1's `/metrics`), so etcd's dashboards and alerts read oxcd unchanged.

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use super::register;

/// Declares a plain integer gauge registered in the one registry.
macro_rules! gauge {
    ($(#[$doc:meta])* $name:ident, $metric:literal, $help:literal) => {
        $(#[$doc])*
        pub static $name: LazyLock<IntGauge> = LazyLock::new(|| {
            register(IntGauge::new($metric, $help).expect("valid metric"))
        });
    };
}

/// Declares a plain integer counter registered in the one registry.
macro_rules! counter {
    ($(#[$doc:meta])* $name:ident, $metric:literal, $help:literal) => {
        $(#[$doc])*
        pub static $name: LazyLock<IntCounter> = LazyLock::new(|| {
            register(IntCounter::new($metric, $help).expect("valid metric"))
        });
    };
}

/// Declares a gauge with one label whose single series is set to 1 (etcd's "info" gauges).
macro_rules! info_gauge {
    ($(#[$doc:meta])* $name:ident, $metric:literal, $help:literal, $label:literal) => {
        $(#[$doc])*
        pub static $name: LazyLock<IntGaugeVec> = LazyLock::new(|| {
            register(IntGaugeVec::new(Opts::new($metric, $help), &[$label]).expect("valid metric"))
        });
    };
}

gauge!(
    /// Raft entries known committed (etcd's raft commit index; a gauge in etcd despite `_total`).
    PROPOSALS_COMMITTED,
    "etcd_server_proposals_committed_total",
    "The total number of consensus proposals committed."
);
gauge!(
    /// Raft entries applied to the state machine (etcd's applied index).
    PROPOSALS_APPLIED,
    "etcd_server_proposals_applied_total",
    "The total number of consensus proposals applied."
);
gauge!(
    /// Proposals this member has submitted whose result is not yet applied.
    PROPOSALS_PENDING,
    "etcd_server_proposals_pending",
    "The current number of pending proposals to commit."
);
gauge!(
    /// The backend quota in force, which the "database near quota" alert divides by.
    QUOTA_BACKEND_BYTES,
    "etcd_server_quota_backend_bytes",
    "Current backend storage quota size in bytes."
);
gauge!(
    /// Whether this member is a learner (a non-voting member catching up).
    IS_LEARNER,
    "etcd_server_is_learner",
    "Whether or not this member is a learner. 1 if is, 0 otherwise."
);
info_gauge!(
    /// The member id, in hexadecimal, as a label (dashboards join on it).
    SERVER_ID,
    "etcd_server_id",
    "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
    "server_id"
);
info_gauge!(
    /// The etcd version this member answers as.
    SERVER_VERSION,
    "etcd_server_version",
    "Which version is running. 1 for 'server_version' label with current version.",
    "server_version"
);
info_gauge!(
    /// The cluster version (major.minor), as etcd reports it once the cluster has decided it.
    CLUSTER_VERSION,
    "etcd_cluster_version",
    "Which version is running. 1 for 'cluster_version' label with current cluster version",
    "cluster_version"
);
gauge!(
    /// Bytes of live data in the applied state (RocksDB's estimate of live SST data plus the
    /// memtables): what compaction cannot free, unlike the file size in `DB_SIZE`.
    DB_SIZE_IN_USE,
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "Total size of the underlying database logically in use in bytes."
);
gauge!(
    /// Live keys (not deleted) in the key space.
    KEYS_TOTAL,
    "etcd_debugging_mvcc_keys_total",
    "Total number of keys."
);
counter!(
    /// Puts applied, each op of a txn counted (etcd's mvcc write counter).
    MVCC_PUT,
    "etcd_mvcc_put_total",
    "Total number of puts seen by this member."
);
counter!(
    /// Delete ranges applied, each op of a txn counted.
    MVCC_DELETE,
    "etcd_mvcc_delete_total",
    "Total number of deletes seen by this member."
);
counter!(
    /// Ranges served by this member (serializable and linearizable, and inside txns).
    MVCC_RANGE,
    "etcd_mvcc_range_total",
    "Total number of ranges seen by this member."
);
counter!(
    /// Txns of more than one operation (etcd counts a txn only when it holds several ops).
    MVCC_TXN,
    "etcd_mvcc_txn_total",
    "Total number of txns seen by this member."
);

/// Applied-state write latency: one RocksDB batch write per applied raft batch, which is
/// oxcd's counterpart of etcd's bbolt commit.
pub static BACKEND_COMMIT: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")),
        )
        .expect("valid metric"),
    )
});

/// Time a raft message to a peer takes to be answered, by peer id (etcd measures it with
/// its prober; oxcd times each append-entries call, heartbeats included).
pub static PEER_ROUND_TRIP: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")),
            &["To"],
        )
        .expect("valid metric"),
    )
});

/// Raft messages to a peer that failed (unreachable, refused, timed out), by peer id.
pub static PEER_SENT_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_sent_failures_total",
                "The total number of send failures from peers.",
            ),
            &["To"],
        )
        .expect("valid metric"),
    )
});

/// Raft message bytes sent to a peer, by peer id.
pub static PEER_SENT_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
            ),
            &["To"],
        )
        .expect("valid metric"),
    )
});

/// Raft reply bytes received from a peer, by peer id.
pub static PEER_RECEIVED_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
            ),
            &["From"],
        )
        .expect("valid metric"),
    )
});

/// Sets an info gauge's only series to `value`, dropping any other (a changed version).
pub fn set_info(gauge: &IntGaugeVec, value: &str) {
    gauge.reset();
    gauge.with_label_values(&[value]).set(1);
}

/// Sets the gauges describing the member itself: id, versions and quota.
pub fn identify(member_id: u64, quota_bytes: i64) {
    use crate::version::{CLUSTER_VERSION as CLUSTER, ETCD_VERSION};
    set_info(&SERVER_ID, &format!("{member_id:x}"));
    set_info(&SERVER_VERSION, ETCD_VERSION);
    // etcd labels the cluster version with major.minor only ("3.5").
    let major_minor: Vec<&str> = CLUSTER.split('.').take(2).collect();
    set_info(&CLUSTER_VERSION, &major_minor.join("."));
    QUOTA_BACKEND_BYTES.set(quota_bytes);
}

/// Counts a proposal as pending until it is dropped (applied, failed or abandoned).
pub struct PendingProposal(());

impl PendingProposal {
    /// Starts counting one proposal.
    pub fn start() -> PendingProposal {
        PROPOSALS_PENDING.inc();
        PendingProposal(())
    }
}

impl Drop for PendingProposal {
    fn drop(&mut self) {
        PROPOSALS_PENDING.dec();
    }
}

/// Makes every family of this module appear in `/metrics` before its first event.
pub(super) fn touch() {
    let _ = (&*PROPOSALS_COMMITTED, &*PROPOSALS_APPLIED, &*PROPOSALS_PENDING);
    let _ = (&*QUOTA_BACKEND_BYTES, &*IS_LEARNER, &*SERVER_ID, &*SERVER_VERSION);
    let _ = (&*CLUSTER_VERSION, &*DB_SIZE_IN_USE, &*KEYS_TOTAL, &*BACKEND_COMMIT);
    let _ = (&*MVCC_PUT, &*MVCC_DELETE, &*MVCC_RANGE, &*MVCC_TXN);
    let _ = (&*PEER_ROUND_TRIP, &*PEER_SENT_FAILURES, &*PEER_SENT_BYTES, &*PEER_RECEIVED_BYTES);
}
