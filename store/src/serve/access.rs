//! etcd's access controller in front of the client port's HTTP endpoints (`/health`,
//! `/metrics`, `/version`, `/v2/…`, the `/v3/` gateway; never gRPC): a plain-HTTP request
//! must name a whitelisted host (`--host-whitelist`, etcd's guard against DNS rebinding,
//! CVE-2018-5702), answers carry CORS headers for the allowed origins (`--cors`, any by
//! default), and `OPTIONS` — a browser's preflight — is answered 200 at once on any path.
//! With `--client-cert-auth` and auth enabled, a gateway request (`/v3/…`) over TLS whose
//! certificate carries a common name is refused (400), as in etcd: the gateway never takes
//! the CN as the user, and says so rather than running the request as nobody.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::member::handle::Member;
use crate::serve::tls_listener::Peer;

/// Who may call the HTTP endpoints, from `--cors` and `--host-whitelist`.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    origins: HashSet<String>,
    hosts: HashSet<String>,
    client_cert_auth: bool,
}

impl AccessPolicy {
    /// The policy the flags ask for.
    pub fn from_config(config: &Config) -> AccessPolicy {
        AccessPolicy {
            origins: Config::urls(&config.cors).into_iter().collect(),
            hosts: Config::urls(&config.host_whitelist).into_iter().collect(),
            client_cert_auth: config.tls.client_cert_auth,
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.contains("*") || self.hosts.contains(host)
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if any.
    fn allowed_origin(&self, origin: Option<&str>) -> Option<String> {
        if self.origins.contains("*") {
            return Some("*".into());
        }
        origin.filter(|o| self.origins.contains(*o)).map(String::from)
    }
}

/// The access controller's state for one listener: the policy, whether the listener's
/// connections are TLS (where etcd accepts any host), and the member (is auth enabled).
#[derive(Clone)]
pub struct ListenerAccess {
    /// The flags' policy, shared by every listener.
    pub policy: Arc<AccessPolicy>,
    /// Whether connections on this listener are TLS.
    pub tls: bool,
    /// The member, asked whether auth is enabled.
    pub member: Member,
}

/// Middleware (`axum::middleware::from_fn_with_state`) applying the policy to one request.
pub async fn check(State(access): State<ListenerAccess>, req: Request, next: Next) -> Response {
    if is_grpc(req.headers()) {
        return next.run(req).await;
    }
    if !access.tls {
        let host = hostname(req.headers(), req.uri());
        if !access.policy.host_allowed(&host) {
            tracing::warn!(host, "rejecting HTTP request to prevent DNS rebinding attacks");
            return refuse(req, misdirected(&host)).await;
        }
    } else if access.policy.client_cert_auth
        && is_gateway(req.uri().path())
        && has_common_name(&req)
        && access.member.auth_enabled()
    {
        let refusal = (
            StatusCode::BAD_REQUEST,
            [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")],
            "CommonName of client sending a request against gateway will be ignored and not used as expected\n",
        );
        return refuse(req, refusal.into_response()).await;
    }
    let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
    let allow = access.policy.allowed_origin(origin);
    let mut response = if req.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    if let Some(allow) = allow {
        add_cors_headers(response.headers_mut(), &allow);
    }
    response
}

/// The body a refused request may still be sending, read and dropped before answering.
const REFUSED_BODY_LIMIT: usize = 4 << 20;

/// Answers a refused request only after reading what is left of its body. An HTTP/2 answer
/// sent while the client is still sending makes the server reset the stream, and a client
/// such as curl then reports a framing error instead of the refusal (seen about one time in
/// three with a small POST). A body beyond the limit is cut off as before.
async fn refuse(req: Request, refusal: Response) -> Response {
    let _ = axum::body::to_bytes(req.into_body(), REFUSED_BODY_LIMIT).await;
    refusal
}

/// The JSON gateway's paths (etcd 3.4's `/v3beta/` too).
fn is_gateway(path: &str) -> bool {
    path.starts_with("/v3/") || path.starts_with("/v3beta/")
}

/// Whether the TLS client's verified certificate has a common name.
fn has_common_name(req: &Request) -> bool {
    req.extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .is_some_and(|info| info.0.common_name.as_deref().is_some_and(|cn| !cn.is_empty()))
}

/// gRPC calls (and grpc-web) are the services' own, outside etcd's HTTP handler chain.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The request's host name without its port, as Go's `httputil.GetHostname`.
fn hostname(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((ip, _)) = rest.split_once(']') {
            return ip.to_string();
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.to_string()
        }
        _ => host,
    }
}

/// etcd's 421 answer for a host outside the whitelist.
fn misdirected(host: &str) -> Response {
    let body = format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {host:?}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks (CVE-2018-5702).\n\n"
    );
    (
        StatusCode::MISDIRECTED_REQUEST,
        [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")],
        body,
    )
        .into_response()
}

fn add_cors_headers(headers: &mut HeaderMap, origin: &str) {
    let Ok(origin) = HeaderValue::from_str(origin) else { return };
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert("access-control-allow-origin", origin);
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(cors: &str, hosts: &str) -> AccessPolicy {
        AccessPolicy {
            origins: Config::urls(cors).into_iter().collect(),
            hosts: Config::urls(hosts).into_iter().collect(),
            client_cert_auth: false,
        }
    }

    #[test]
    fn hosts_are_compared_without_their_port() {
        let uri = axum::http::Uri::from_static("/health");
        let host = |h: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_str(h).unwrap());
            hostname(&headers, &uri)
        };
        assert_eq!(host("example.com:2379"), "example.com");
        assert_eq!(host("example.com"), "example.com");
        assert_eq!(host("[::1]:2379"), "::1");
        assert_eq!(host("127.0.0.1:1"), "127.0.0.1");
        let p = policy("*", "example.com,127.0.0.1");
        assert!(p.host_allowed("example.com") && p.host_allowed("127.0.0.1"));
        assert!(!p.host_allowed("evil.com"));
        assert!(policy("*", "*").host_allowed("anything"));
    }

    #[test]
    fn origins_are_allowed_by_name_or_all() {
        assert_eq!(policy("*", "*").allowed_origin(None), Some("*".into()));
        let p = policy("http://a.example:80", "*");
        assert_eq!(
            p.allowed_origin(Some("http://a.example:80")),
            Some("http://a.example:80".into())
        );
        assert_eq!(p.allowed_origin(Some("http://b.example:80")), None);
        assert_eq!(p.allowed_origin(None), None);
    }
}
