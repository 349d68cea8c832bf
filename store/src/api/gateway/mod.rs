//! etcd's gRPC gateway: the v3 API as JSON over HTTP under `/v3/` (and `/v3beta/`, etcd
//! 3.4's other prefix) on the client port, for curl users and clients that speak only HTTP.
//!
//! As in etcd, the gateway is a gRPC client of the member's own gRPC services: each route
//! decodes the JSON body (`json`), calls the service through an in-process connection
//! (`loopback`, no socket), and writes the answer as grpc-gateway's `JSONPb` does. So
//! validation, auth and errors are exactly those of gRPC clients, and the gateway depends on
//! nothing but the services' wire interface. The `Authorization` header carries a token from
//! `/v3/auth/authenticate`; as in etcd, a client certificate's CN is never the user of a
//! gateway request. Errors are grpc-gateway's `{"error","code","message"}` with its HTTP
//! status. `/v3/watch` streams one `{"result": WatchResponse}` line per response (`watch`), as do
//! `/v3/maintenance/snapshot` and `/v3/election/observe`; `/v3/lock/*` and `/v3/election/*`
//! are the v3lock and v3election services, which etcd's gateway serves too (`concurrency`).

/// Defines a unary route handler: decode the body, call a method of a gRPC client over the
/// loopback channel, encode the answer. Used by the route modules below.
macro_rules! route {
    ($name:ident, $client:ident, $method:ident, $decode:expr, $encode:expr) => {
        pub(super) async fn $name(
            axum::extract::State(gw): axum::extract::State<super::Gateway>,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let result = async {
                let message = super::decode(&body, $decode)?;
                let mut client = $client::new(gw.channel.clone())
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX);
                let response = client.$method(super::grpc(&headers, message)).await?.into_inner();
                Ok($encode(&response))
            };
            super::reply(result.await)
        }
    };
}

mod concurrency;
mod goerr;
pub mod json;
pub mod loopback;
mod routes;
mod watch;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tonic::transport::Channel;
use tonic::Code;

use crate::error::Result;
use json::In;

/// The gateway's routes (under `/v3/` and `/v3beta/`), to merge into the client router.
/// `grpc` is the member's gRPC router (the services only, without the gateway).
pub fn router(grpc: axum::Router) -> axum::Router {
    routes::router(loopback::channel(grpc))
}

/// grpc-gateway v1's HTTP status for a gRPC code (`HTTPStatusFromCode`).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's error body.
fn error_body(status: &tonic::Status) -> String {
    json::Obj::new()
        .str("error", status.message())
        .i32("code", status.code() as i32)
        .str("message", status.message())
        .done()
}

/// The HTTP answer for a route's outcome.
fn reply(result: Result<String, tonic::Status>) -> Response {
    let (code, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(status) => (http_status(status.code()), error_body(&status)),
    };
    (code, GATEWAY_HEADERS, body).into_response()
}

/// Headers of every gateway answer: grpc-gateway copies the gRPC response's metadata as
/// `Grpc-Metadata-*` headers, and etcd's answers carry the content type that way.
const GATEWAY_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/json"), ("grpc-metadata-content-type", "application/grpc")];

/// A gRPC request for `message` with the token of the HTTP request's `Authorization`.
fn grpc<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let token = headers.get("authorization").and_then(|v| v.to_str().ok());
    if let Some(value) = token.and_then(|v| v.parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The body as a JSON value (an empty body is `{}`, as in grpc-gateway).
fn body_json(body: &Bytes) -> Result<Value, tonic::Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    // Like one Go `Decode`: the first value counts, whatever follows it.
    let first = serde_json::Deserializer::from_slice(body).into_iter::<Value>().next();
    match first {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(tonic::Status::invalid_argument(
            goerr::json_syntax(body).unwrap_or_else(|| e.to_string()),
        )),
        None => Ok(Value::Object(Default::default())),
    }
}

/// Decodes the body with `decode`, or answers the decoding error.
fn decode<T>(body: &Bytes, decode: impl FnOnce(&In<'_>) -> Result<T>) -> Result<T, tonic::Status> {
    let value = body_json(body)?;
    let object = json::object(&value).map_err(tonic::Status::from)?;
    decode(&object).map_err(tonic::Status::from)
}

/// The channel every route's client is made from (cheap to clone).
#[derive(Clone)]
struct Gateway {
    channel: Channel,
}
