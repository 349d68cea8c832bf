//! A small HTTP/1.1 client over hyper for the v2 API and oxcd's admin endpoints: one connection per request (a v2
//! watch is a long poll that holds its connection), a body limit, and a timeout.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// The largest body read (a recursive listing of a big v2 tree).
const MAX_BODY: usize = 1 << 30;

/// A response: status, `X-Etcd-Index`, body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `X-Etcd-Index` header, if present.
    pub etcd_index: Option<u64>,
    /// The body.
    pub body: Bytes,
}

/// GETs `path_and_query` from `base` (`http://host:port`), waiting at most `timeout` (for the
/// whole exchange, long polls included).
pub async fn get(
    base: &str,
    path_and_query: &str,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    send(base, hyper::Method::GET, path_and_query, timeout).await
}

/// POSTs an empty body to `path_and_query` (oxcd's admin endpoints), as `get` does.
pub async fn post(
    base: &str,
    path_and_query: &str,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    send(base, hyper::Method::POST, path_and_query, timeout).await
}

async fn send(
    base: &str,
    method: hyper::Method,
    path_and_query: &str,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    match tokio::time::timeout(timeout, send_inner(base, method, path_and_query)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn send_inner(
    base: &str,
    method: hyper::Method,
    path_and_query: &str,
) -> Result<HttpResponse, String> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base:?}: only http:// URLs are supported"))?
        .trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect to {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {authority}: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::builder()
        .method(method.clone())
        .uri(path_and_query)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{method} {path_and_query}: {e}"))?;
        let status = resp.status().as_u16();
        let etcd_index = resp
            .headers()
            .get("x-etcd-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("{method} {path_and_query}: reading the body: {e}"))?
            .to_bytes();
        Ok(HttpResponse { status, etcd_index, body })
    }
    .await;
    driver.abort();
    result
}
