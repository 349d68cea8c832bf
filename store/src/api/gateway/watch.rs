//! The gateway's streaming routes, as grpc-gateway serves bidirectional streams: the body
//! holds one or more JSON requests, the answer is one `{"result": ...}` line per response.
//!
//! - `/v3/watch`: the request stream stays open after the body's requests (as etcd's server
//!   keeps a watch stream going after the gateway half-closes it), so events stream until the
//!   client goes away, which drops the gRPC call, or the member stops.
//! - `/v3/lease/keepalive`: the request stream ends with the body, so the answer ends after
//!   the last keep-alive's response.
//! - `/v3/maintenance/snapshot` (server streaming): one line per chunk of the snapshot, each
//!   chunk's bytes base64 in `blob`, until `remaining_bytes` reaches 0.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

use super::json::{self, In};
use super::{grpc, reply, Gateway};
use crate::error::Result;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::watch_client::WatchClient;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::{
    LeaseKeepAliveRequest, SnapshotRequest, WatchCancelRequest, WatchProgressRequest, WatchRequest,
};

/// The JSON values in a body (grpc-gateway reads a stream of them).
fn values(body: &Bytes) -> Result<Vec<Value>, tonic::Status> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|e| tonic::Status::invalid_argument(e.to_string()))
}

/// Parses every request of the body with `parse`.
fn requests<T>(
    body: &Bytes,
    parse: impl Fn(&In<'_>) -> Result<T>,
) -> Result<Vec<T>, tonic::Status> {
    let mut out = Vec::new();
    for value in values(body)? {
        let object = json::object(&value).map_err(tonic::Status::from)?;
        out.push(parse(&object).map_err(tonic::Status::from)?);
    }
    Ok(out)
}

fn watch_request(o: &In<'_>) -> Result<WatchRequest> {
    let request_union = if let Some(create) = o.obj("create_request")? {
        Some(RequestUnion::CreateRequest(json::watch_create(&create)?))
    } else if let Some(cancel) = o.obj("cancel_request")? {
        Some(RequestUnion::CancelRequest(WatchCancelRequest { watch_id: cancel.int("watch_id")? }))
    } else if o.obj("progress_request")?.is_some() {
        Some(RequestUnion::ProgressRequest(WatchProgressRequest {}))
    } else {
        None
    };
    Ok(WatchRequest { request_union })
}

/// A streamed answer: one `{"result": ...}` line per item, an error line if the stream fails.
pub(super) fn lines<S, T>(responses: S, encode: fn(&T) -> String) -> Response
where
    S: futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static,
    T: Send + 'static,
{
    let body = responses.map(move |item| {
        let line = match item {
            Ok(response) => format!("{{\"result\":{}}}\n", encode(&response)),
            Err(status) => format!("{{\"error\":{}}}\n", super::error_body(&status)),
        };
        Ok::<_, std::io::Error>(Bytes::from(line))
    });
    (StatusCode::OK, super::GATEWAY_HEADERS, Body::from_stream(body)).into_response()
}

/// `/v3/watch`.
pub async fn watch(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    let requests = match requests(&body, watch_request) {
        Ok(r) => r,
        Err(status) => return reply(Err(status)),
    };
    let outgoing = futures::stream::iter(requests).chain(futures::stream::pending());
    let mut client = WatchClient::new(gw.channel.clone()).max_decoding_message_size(usize::MAX);
    match client.watch(grpc(&headers, outgoing)).await {
        Ok(stream) => lines(stream.into_inner(), json::watch),
        Err(status) => reply(Err(status)),
    }
}

/// `/v3/lease/keepalive`.
pub async fn lease_keep_alive(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parse = |o: &In<'_>| Ok(LeaseKeepAliveRequest { id: o.int("ID")? });
    let requests = match requests(&body, parse) {
        Ok(r) => r,
        Err(status) => return reply(Err(status)),
    };
    let mut client = LeaseClient::new(gw.channel.clone());
    match client.lease_keep_alive(grpc(&headers, futures::stream::iter(requests))).await {
        Ok(stream) => lines(stream.into_inner(), json::lease_keep_alive),
        Err(status) => reply(Err(status)),
    }
}

/// `/v3/maintenance/snapshot`.
pub async fn snapshot(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(status) = super::decode(&body, |_: &In<'_>| Ok(SnapshotRequest {})) {
        return reply(Err(status));
    }
    let mut client =
        MaintenanceClient::new(gw.channel.clone()).max_decoding_message_size(usize::MAX);
    match client.snapshot(grpc(&headers, SnapshotRequest {})).await {
        Ok(stream) => lines(stream.into_inner(), json::snapshot),
        Err(status) => reply(Err(status)),
    }
}
