//! Server, raft, backend and MVCC families under etcd's names, types, labels and buckets
//! (copied from etcd 3.5.1's `/metrics`), so etcd's dashboards and alerts read oxcd unchanged.

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use super::register;

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

/// Time each applied command takes, by etcd's operation name, outcome and API version.
pub static APPLY_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "etcd_server_apply_duration_seconds",
                "The latency distributions of v2 apply called by backend.",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")),
            &["version", "op", "success"],
        )
        .expect("valid metric"),
    )
});
/// Time a range outside a txn takes to read, by outcome (etcd 3.6's `txn.Range` timing).
pub static RANGE_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "etcd_server_range_duration_seconds",
                "The latency distributions of txn.Range",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")),
            &["success"],
        )
        .expect("valid metric"),
    )
});
counter!(
    /// Applies slower than etcd's warning threshold (`SLOW_APPLY`, 100 ms).
    SLOW_APPLY,
    "etcd_server_slow_apply_total",
    "The total number of slow apply requests (likely overloaded from slow disk)."
);
/// Client calls by the version the client announces (`client-api-version` metadata, as
/// etcd's clientv3 sends it) and call kind (`unary` or `stream`).
pub static CLIENT_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_server_client_requests_total",
                "The total number of client requests per client version.",
            ),
            &["type", "client_api_version"],
        )
        .expect("valid metric"),
    )
});
counter!(
    /// `/health` answers that were healthy.
    HEALTH_SUCCESS,
    "etcd_server_health_success",
    "The total number of successful health checks"
);
counter!(
    /// `/health` answers that were not.
    HEALTH_FAILURES,
    "etcd_server_health_failures",
    "The total number of failed health checks"
);
counter!(
    /// Learners this member promoted while leading.
    LEARNER_PROMOTE_SUCCESSES,
    "etcd_server_learner_promote_successes",
    "The total number of successful learner promotions while this member is leader."
);
counter!(
    /// Linearizable reads whose ReadIndex failed (no quorum, leader lost, stopped).
    READ_INDEXES_FAILED,
    "etcd_server_read_indexes_failed_total",
    "The total number of failed read indexes seen."
);
counter!(
    /// ReadIndex rounds that had to be retried (leader unknown or unreachable).
    SLOW_READ_INDEXES,
    "etcd_server_slow_read_indexes_total",
    "The total number of pending read indexes not in sync with leader's or timed out read index requests."
);
gauge!(
    /// 1 while a raft snapshot received from the leader is being installed.
    SNAPSHOT_APPLY_IN_PROGRESS,
    "etcd_server_snapshot_apply_in_progress_total",
    "1 if the server is applying the incoming snapshot. 0 if none."
);

/// etcd's default `--experimental-warning-apply-duration`: slower applies are counted.
pub const SLOW_APPLY_THRESHOLD: std::time::Duration = std::time::Duration::from_millis(100);

/// Records one applied command's time and outcome (etcd's `warnOfExpensiveRequest`).
pub fn observe_apply(version: &str, op: &str, success: bool, took: std::time::Duration) {
    let success = if success { "true" } else { "false" };
    APPLY_DURATION.with_label_values(&[version, op, success]).observe(took.as_secs_f64());
    if took > SLOW_APPLY_THRESHOLD {
        SLOW_APPLY.inc();
    }
}

/// Peers this member's raft messages reach, by local and remote member id: 1 while the last
/// message to the peer was answered, 0 once one failed (etcd counts its open peer streams;
/// oxcd's raft traffic flows from the leader, so followers show no series).
pub static ACTIVE_PEERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "etcd_network_active_peers",
                "The current number of active peer connections.",
            ),
            &["Local", "Remote"],
        )
        .expect("valid metric"),
    )
});

/// Times a reachable peer became unreachable, by local and remote member id.
pub static DISCONNECTED_PEERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "etcd_network_disconnected_peers_total",
                "The total number of disconnected peers.",
            ),
            &["Local", "Remote"],
        )
        .expect("valid metric"),
    )
});

/// The members this member knows of, itself included (etcd 3.6's transport counts every
/// peer it was told about, and itself), by local and remote member id.
pub static KNOWN_PEERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("etcd_network_known_peers", "The current number of known peers."),
            &["Local", "Remote"],
        )
        .expect("valid metric"),
    )
});

/// Sets `KNOWN_PEERS` to the membership `members`, dropping the series of removed members.
pub fn set_known_peers(local: u64, members: impl IntoIterator<Item = u64>) {
    static SHOWN: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let local = format!("{local:x}");
    let now: Vec<(String, String)> =
        members.into_iter().map(|id| (local.clone(), format!("{id:x}"))).collect();
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    for gone in shown.iter().filter(|s| !now.contains(s)) {
        let _ = KNOWN_PEERS.remove_label_values(&[&gone.0, &gone.1]);
    }
    for (l, r) in &now {
        KNOWN_PEERS.with_label_values(&[l, r]).set(1);
    }
    *shown = now;
}

/// Records whether a raft message from `local` to `remote` was answered.
pub fn peer_answered(local: u64, remote: u64, answered: bool) {
    let (local, remote) = (format!("{local:x}"), format!("{remote:x}"));
    let labels = [local.as_str(), remote.as_str()];
    let active = ACTIVE_PEERS.with_label_values(&labels);
    if answered {
        active.set(1);
    } else if active.get() == 1 {
        active.set(0);
        DISCONNECTED_PEERS.with_label_values(&labels).inc();
    }
}

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
    let _ = (&*APPLY_DURATION, &*SLOW_APPLY, &*CLIENT_REQUESTS, &*HEALTH_SUCCESS);
    let _ = (&*HEALTH_FAILURES, &*LEARNER_PROMOTE_SUCCESSES, &*READ_INDEXES_FAILED);
    let _ = (&*SLOW_READ_INDEXES, &*SNAPSHOT_APPLY_IN_PROGRESS, &*ACTIVE_PEERS);
    let _ = (&*DISCONNECTED_PEERS, &*KNOWN_PEERS, &*RANGE_DURATION);
}
