//! Prometheus metrics under etcd's names, in one registry served at `/metrics`.
//!
//! `mod.rs` holds the registry, rendering and the gRPC families (counted by a middleware);
//! [`server`] the server, raft, backend, MVCC and peer families.

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

/// Declares a histogram with etcd's buckets (`exponential_buckets(start, factor, count)`).
macro_rules! histogram {
    ($(#[$doc:meta])* $name:ident, $metric:literal, $help:literal, $start:expr, $factor:expr, $count:expr) => {
        $(#[$doc])*
        pub static $name: LazyLock<Histogram> = LazyLock::new(|| {
            let buckets =
                prometheus::exponential_buckets($start, $factor, $count).expect("valid buckets");
            let opts = HistogramOpts::new($metric, $help).buckets(buckets);
            register(Histogram::with_opts(opts).expect("valid metric"))
        });
    };
}

pub mod backend;
pub mod debugging;
pub mod server;

pub use backend::*;
pub use debugging::*;
pub use server::*;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// The one registry.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

pub(crate) fn register<T: prometheus::core::Collector + Clone + 'static>(metric: T) -> T {
    // Registration fails only for duplicate names, which would be a bug caught by tests.
    let _ = REGISTRY.register(Box::new(metric.clone()));
    metric
}

/// Whether a leader exists (etcd_server_has_leader).
pub static HAS_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
        )
        .expect("valid metric"),
    )
});
/// Whether this member leads (etcd_server_is_leader).
pub static IS_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        )
        .expect("valid metric"),
    )
});
/// Leader changes seen (etcd_server_leader_changes_seen_total).
pub static LEADER_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
        )
        .expect("valid metric"),
    )
});
/// Proposals that failed (etcd_server_proposals_failed_total).
pub static PROPOSALS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
        )
        .expect("valid metric"),
    )
});
/// Backend size (etcd_mvcc_db_total_size_in_bytes).
pub static DB_SIZE: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
        )
        .expect("valid metric"),
    )
});
/// Memory RocksDB holds, by kind (oxcd's own; etcd's bbolt has no equivalent).
pub static STORAGE_MEMORY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("oxcd_storage_memory_bytes", "Memory held by the storage engine, by kind."),
            &["kind"],
        )
        .expect("valid metric"),
    )
});
/// Changes held by the in-memory key index (grows between compactions, shrinks at each).
pub static INDEX_REVISIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "oxcd_mvcc_index_revisions",
            "Key changes held by the in-memory index (live and not yet compacted).",
        )
        .expect("valid metric"),
    )
});
/// Raft log fsync latency (etcd_disk_wal_fsync_duration_seconds).
pub static WAL_FSYNC: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")),
        )
        .expect("valid metric"),
    )
});
/// Bytes received from gRPC clients (etcd_network_client_grpc_received_bytes_total).
pub static GRPC_RECEIVED_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "etcd_network_client_grpc_received_bytes_total",
            "The total number of bytes received from grpc clients.",
        )
        .expect("valid metric"),
    )
});
/// Bytes sent to gRPC clients (etcd_network_client_grpc_sent_bytes_total).
pub static GRPC_SENT_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "etcd_network_client_grpc_sent_bytes_total",
            "The total number of bytes sent to grpc clients.",
        )
        .expect("valid metric"),
    )
});
/// RPCs completed (grpc_server_handled_total).
pub static GRPC_HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )
        .expect("valid metric"),
    )
});

/// RPCs started (grpc_server_started_total).
pub static GRPC_STARTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new("grpc_server_started_total", "Total number of RPCs started on the server."),
            &["grpc_type", "grpc_service", "grpc_method"],
        )
        .expect("valid metric"),
    )
});
/// Request messages received (grpc_server_msg_received_total); a unary call is one message.
pub static GRPC_MSG_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
            ),
            &["grpc_type", "grpc_service", "grpc_method"],
        )
        .expect("valid metric"),
    )
});
/// Response messages sent (grpc_server_msg_sent_total); a successful unary call is one.
pub static GRPC_MSG_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
            ),
            &["grpc_type", "grpc_service", "grpc_method"],
        )
        .expect("valid metric"),
    )
});
/// Time to the response headers of each call (grpc_server_handling_seconds), registered only
/// with `--metrics extensive`, as etcd does (go-grpc-prometheus's default buckets).
pub static GRPC_HANDLING: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        HistogramOpts::new(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        ),
        &["grpc_type", "grpc_service", "grpc_method"],
    )
    .expect("valid metric")
});
/// Whether `--metrics extensive` registered the handling-time histogram.
static EXTENSIVE: AtomicBool = AtomicBool::new(false);

/// Applies `--metrics`: `extensive` adds the per-call latency histogram, `basic` (the
/// default) leaves it out. Also registers the process collector (`process_*`, as Go's
/// client registers by default) and the member's identity gauges' initial values.
pub fn init(level: &str) {
    if level == "extensive" && !EXTENSIVE.swap(true, Ordering::SeqCst) {
        let _ = register(GRPC_HANDLING.clone());
    }
    #[cfg(target_os = "linux")]
    {
        static PROCESS: std::sync::Once = std::sync::Once::new();
        PROCESS.call_once(|| {
            let collector = prometheus::process_collector::ProcessCollector::for_self();
            let _ = REGISTRY.register(Box::new(collector));
        });
    }
    // Both v2 read actions exist from the start (etcd reads its v2 store at boot, which
    // oxcd does not), so the family has its labels before the first v2 read.
    for action in ["get", "getRecursive"] {
        V2_READS.with_label_values(&[action]);
    }
    // go-grpc-prometheus initializes every method's series at 0, so rates and "started minus
    // handled" panels work before the first call.
    for (service, methods) in KNOWN_METHODS {
        for method in *methods {
            let labels = [grpc_type(method), service, method];
            GRPC_STARTED.with_label_values(&labels);
            GRPC_MSG_RECEIVED.with_label_values(&labels);
            GRPC_MSG_SENT.with_label_values(&labels);
        }
    }
}

/// Renders every metric in the text exposition format.
pub fn render() -> String {
    // Touch the lazies so every metric appears even before its first event.
    let _ = (&*HAS_LEADER, &*IS_LEADER, &*LEADER_CHANGES, &*PROPOSALS_FAILED, &*DB_SIZE);
    let _ = (&*WAL_FSYNC, &*GRPC_RECEIVED_BYTES, &*GRPC_SENT_BYTES, &*GRPC_HANDLED);
    let _ = (&*STORAGE_MEMORY, &*INDEX_REVISIONS);
    let _ = (&*GRPC_STARTED, &*GRPC_MSG_RECEIVED, &*GRPC_MSG_SENT);
    server::touch();
    backend::touch();
    debugging::touch();
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode(&REGISTRY.gather(), &mut buf).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Counts each gRPC call on the client port by service, method and status code, as
/// go-grpc-prometheus's `grpc_server_handled_total` does. The code is read from the response
/// headers (trailers-only errors); calls whose status travels in trailers count as OK.
pub async fn count_grpc(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path().to_string();
    // Labels come from a fixed list, never from the client: made-up methods would
    // otherwise each create a series of their own.
    let call = path
        .trim_start_matches('/')
        .split_once('/')
        .filter(|(service, _)| service.contains('.'))
        .map(|(service, method)| known_method(service, method).unwrap_or(UNKNOWN_METHOD));
    let started = std::time::Instant::now();
    if let Some((service, method)) = call {
        let labels = [grpc_type(method), service, method];
        let kind = if labels[0] == "unary" { "unary" } else { "stream" };
        let version = client_api_version(request.headers());
        CLIENT_REQUESTS.with_label_values(&[kind, version]).inc();
        GRPC_STARTED.with_label_values(&labels).inc();
        if labels[0] == "unary" {
            GRPC_MSG_RECEIVED.with_label_values(&labels).inc();
        }
    }
    let response = next.run(request).await;
    if let Some((service, method)) = call {
        {
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(tonic::Code::from_i32)
                .unwrap_or(tonic::Code::Ok);
            let kind = grpc_type(method);
            if EXTENSIVE.load(Ordering::Relaxed) {
                let elapsed = started.elapsed().as_secs_f64();
                GRPC_HANDLING.with_label_values(&[kind, service, method]).observe(elapsed);
            }
            // Go's names for the codes ("OK", "NotFound", ...), which dashboards expect.
            let code = match code {
                tonic::Code::Ok => "OK".to_string(),
                other => format!("{other:?}"),
            };
            if kind == "unary" && code == "OK" {
                GRPC_MSG_SENT.with_label_values(&[kind, service, method]).inc();
            }
            GRPC_HANDLED.with_label_values(&[kind, service, method, &code]).inc();
        }
    }
    response
}

/// The `client-api-version` a client announces (etcd's clientv3 sends its major.minor), or
/// "unknown". Only short dotted numbers become a label value, so a client cannot create
/// unbounded series.
fn client_api_version(headers: &axum::http::HeaderMap) -> &str {
    let announced = headers.get("client-api-version").and_then(|v| v.to_str().ok());
    match announced {
        Some(v)
            if !v.is_empty()
                && v.len() <= 8
                && v.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            v
        }
        _ => "unknown",
    }
}

/// The `grpc_type` label of a method: its streaming kind.
fn grpc_type(method: &str) -> &'static str {
    match method {
        "Watch" | "LeaseKeepAlive" => "bidi_stream",
        "Snapshot" | "Observe" => "server_stream",
        _ => "unary",
    }
}

/// The labels every call to a method the member does not serve shares.
const UNKNOWN_METHOD: (&str, &str) = ("unknown", "unknown");

/// The gRPC methods of etcd's services (`rpc.proto`, `v3lock.proto`, `v3election.proto`).
const KNOWN_METHODS: &[(&str, &[&str])] = &[
    ("etcdserverpb.KV", &["Range", "Put", "DeleteRange", "Txn", "Compact"]),
    ("etcdserverpb.Watch", &["Watch"]),
    (
        "etcdserverpb.Lease",
        &["LeaseGrant", "LeaseRevoke", "LeaseKeepAlive", "LeaseTimeToLive", "LeaseLeases"],
    ),
    (
        "etcdserverpb.Cluster",
        &["MemberAdd", "MemberRemove", "MemberUpdate", "MemberList", "MemberPromote"],
    ),
    (
        "etcdserverpb.Maintenance",
        &["Alarm", "Status", "Defragment", "Hash", "HashKV", "Snapshot", "MoveLeader", "Downgrade"],
    ),
    (
        "etcdserverpb.Auth",
        &[
            "AuthEnable",
            "AuthDisable",
            "AuthStatus",
            "Authenticate",
            "UserAdd",
            "UserGet",
            "UserList",
            "UserDelete",
            "UserChangePassword",
            "UserGrantRole",
            "UserRevokeRole",
            "RoleAdd",
            "RoleGet",
            "RoleList",
            "RoleDelete",
            "RoleGrantPermission",
            "RoleRevokePermission",
        ],
    ),
    ("v3lockpb.Lock", &["Lock", "Unlock"]),
    ("v3electionpb.Election", &["Campaign", "Proclaim", "Leader", "Observe", "Resign"]),
];

/// The static labels of a known method, or `None` for anything else.
fn known_method(service: &str, method: &str) -> Option<(&'static str, &'static str)> {
    let (name, methods) = KNOWN_METHODS.iter().find(|(name, _)| *name == service)?;
    let method = methods.iter().find(|m| **m == method)?;
    Some((*name, *method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_methods_get_their_own_labels() {
        assert_eq!(known_method("etcdserverpb.KV", "Range"), Some(("etcdserverpb.KV", "Range")));
        assert_eq!(known_method("etcdserverpb.KV", "MadeUp"), None);
        assert_eq!(known_method("made.Up", "Range"), None);
    }
}
