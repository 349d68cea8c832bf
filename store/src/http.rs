//! etcd's plain-HTTP endpoints on the client port: `/health`, `/version`, `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::member::handle::Member;
use crate::version::{CLUSTER_VERSION, ETCD_VERSION};

/// The HTTP routes, to be merged with the gRPC router.
pub fn router(server: Member) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(server)
}

/// A plain HTTP request to a path nothing serves gets etcd's (Go's) `404 page not found`,
/// not the gRPC router's "unimplemented" answer, which only a gRPC client understands: tools
/// probing `/debug/pprof/` or a mistyped path must see a 404, as with etcd.
pub async fn not_found_for_plain_http(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_grpc = |headers: &axum::http::HeaderMap| {
        headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
    };
    let grpc_request = is_grpc(request.headers());
    let response = next.run(request).await;
    if grpc_request || !is_grpc(response.headers()) {
        return response;
    }
    let mut not_found = axum::response::IntoResponse::into_response((
        StatusCode::NOT_FOUND,
        [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    ));
    // Keep the CORS headers the outer layers added.
    for (name, value) in response.headers() {
        if name.as_str().starts_with("access-control-") {
            not_found.headers_mut().insert(name.clone(), value.clone());
        }
    }
    not_found
}

async fn health(State(server): State<Member>) -> (StatusCode, String) {
    let alarms = server.alarms();
    let reason = if !alarms.is_empty() {
        let names: Vec<String> = alarms
            .iter()
            .map(|a| {
                crate::pb::etcdserverpb::AlarmType::try_from(a.alarm)
                    .map(|t| t.as_str_name().to_string())
                    .unwrap_or_default()
            })
            .collect();
        format!("ALARM {}", names.join(","))
    } else {
        match tokio::time::timeout(Duration::from_secs(1), server.sync_to_read_index()).await {
            Ok(Ok(())) => String::new(),
            Ok(Err(e)) => format!("RAFT {e}"),
            Err(_) => "RAFT NO LEADER".to_string(),
        }
    };
    let healthy = reason.is_empty();
    if healthy {
        crate::metrics::HEALTH_SUCCESS.inc();
    } else {
        crate::metrics::HEALTH_FAILURES.inc();
    }
    let body = serde_json::json!({ "health": healthy.to_string(), "reason": reason }).to_string();
    (if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

async fn version() -> String {
    // etcd's field order, which serde_json's map would sort away.
    format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{CLUSTER_VERSION}"}}"#)
}

async fn metrics(State(server): State<Member>) -> String {
    crate::metrics::DB_SIZE.set(server.db_size_bytes() as i64);
    server.report_metrics();
    crate::metrics::render()
}
