//! The v2 API's HTTP handlers on the client port (etcd 3.4's `v2http` with `--enable-v2`):
//! `/v2/keys` (reads served locally unless `quorum=true`, writes through raft, `wait=true`
//! long polls and streams), `/v2/machines` and `/v2/stats/*`; `/v2/members` is `members`'s.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::members::members;
use crate::member::handle::{Member, RaftRole, V2Watch as Watch};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::v2::command::{V2Command, V2Outcome};
use crate::v2::error::{self as code, V2Error};
use crate::v2::event::{now_ns, rfc3339_nano, Event};
use crate::v2::KEYS_PREFIX;

/// Without `--enable-v2`, etcd 3.4 answers every `/v2/...` path with Go's 404.
pub fn disabled_router() -> Router {
    async fn not_found() -> Response {
        let h =
            [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")];
        (StatusCode::NOT_FOUND, h, "404 page not found\n").into_response()
    }
    Router::new().route("/v2", any(not_found)).route("/v2/{*rest}", any(not_found))
}

/// The largest form body read (etcd's default `--max-request-bytes` plus room).
pub(super) const MAX_BODY: usize = 4 << 20;

/// The v2 routes, merged into the client router when `--enable-v2` is set.
pub fn router(server: Member) -> Router {
    Router::new()
        .route("/v2/keys", any(keys))
        .route("/v2/keys/", any(keys))
        .route("/v2/keys/{*path}", any(keys))
        .route("/v2/members", any(members))
        .route("/v2/members/", any(members))
        .route("/v2/members/{*rest}", any(members))
        .route("/v2/machines", any(machines))
        .route("/v2/stats/self", any(stats_self))
        .route("/v2/stats/leader", any(stats_leader))
        .route("/v2/stats/store", any(stats_store))
        .with_state(server)
}

/// The request's form: body values first (PUT/POST forms), then the query's, as Go's
/// `ParseForm` orders them; `value` returns the first.
struct Form(Vec<(String, String)>);

impl Form {
    fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(key, _)| key == k)
    }

    fn value(&self, k: &str) -> &str {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Go's `strconv.ParseBool` of the first value; absent is false.
    fn bool(&self, k: &str) -> Result<bool, ()> {
        if !self.has(k) {
            return Ok(false);
        }
        match self.value(k) {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(()),
        }
    }

    /// `strconv.ParseUint` of the first value; absent is 0.
    fn u64(&self, k: &str) -> Result<u64, ()> {
        if !self.has(k) {
            return Ok(0);
        }
        self.value(k).parse().map_err(|_| ())
    }
}

/// A parsed `/v2/keys` request (etcd's `parseKeyRequest`).
struct KeyRequest {
    method: Method,
    path: String,
    value: String,
    dir: bool,
    prev_value: String,
    prev_index: u64,
    prev_exist: Option<bool>,
    wait: bool,
    wait_index: u64,
    recursive: bool,
    sorted: bool,
    quorum: bool,
    stream: bool,
    refresh: bool,
    expiration: i64,
    no_value_on_success: bool,
}

fn bad(code: u32, cause: &str) -> V2Error {
    V2Error::new(code, cause, 0)
}

fn parse(method: &Method, key: &str, form: &Form) -> Result<KeyRequest, V2Error> {
    let prev_index = form
        .u64("prevIndex")
        .map_err(|_| bad(code::INDEX_NAN, r#"invalid value for "prevIndex""#))?;
    let wait_index = form
        .u64("waitIndex")
        .map_err(|_| bad(code::INDEX_NAN, r#"invalid value for "waitIndex""#))?;
    let flag = |name: &str| {
        form.bool(name)
            .map_err(|_| bad(code::INVALID_FIELD, &format!(r#"invalid value for "{name}""#)))
    };
    let recursive = flag("recursive")?;
    let sorted = flag("sorted")?;
    let wait = flag("wait")?;
    let dir = flag("dir")?;
    let quorum = flag("quorum")?;
    let stream = flag("stream")?;
    if wait && *method != Method::GET {
        return Err(bad(code::INVALID_FIELD, r#""wait" can only be used with GET requests"#));
    }
    let prev_value = form.value("prevValue").to_string();
    if form.has("prevValue") && prev_value.is_empty() {
        return Err(bad(code::PREV_VALUE_REQUIRED, r#""prevValue" cannot be empty"#));
    }
    let no_value_on_success = flag("noValueOnSuccess")?;
    let ttl = if form.value("ttl").is_empty() {
        None
    } else {
        Some(form.u64("ttl").map_err(|_| bad(code::TTL_NAN, r#"invalid value for "ttl""#))?)
    };
    let prev_exist = if form.has("prevExist") {
        Some(
            form.bool("prevExist")
                .map_err(|_| bad(code::INVALID_FIELD, "invalid value for prevExist"))?,
        )
    } else {
        None
    };
    let mut refresh = false;
    if form.has("refresh") {
        refresh = form
            .bool("refresh")
            .map_err(|_| bad(code::INVALID_FIELD, "invalid value for refresh"))?;
        if refresh {
            if form.has("value") && !form.value("value").is_empty() {
                return Err(bad(code::REFRESH_VALUE, "A value was provided on a refresh"));
            }
            if ttl.is_none() {
                return Err(bad(code::REFRESH_TTL_REQUIRED, "No TTL value set"));
            }
        }
    }
    let expiration =
        ttl.map(|t| now_ns().saturating_add((t as i64).saturating_mul(1_000_000_000))).unwrap_or(0);
    Ok(KeyRequest {
        method: method.clone(),
        path: crate::v2::path::clean(&format!("{KEYS_PREFIX}/{key}")),
        value: form.value("value").to_string(),
        dir,
        prev_value,
        prev_index,
        prev_exist,
        wait,
        wait_index,
        recursive,
        sorted,
        quorum,
        stream,
        refresh,
        expiration,
        no_value_on_success,
    })
}

/// Decodes `%XX` escapes of a URL path (Go's `URL.Path` is decoded; `+` stays `+`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn read_form(req: Request) -> (Method, String, Form) {
    let method = req.method().clone();
    let path = percent_decode(req.uri().path());
    let query = req.uri().query().unwrap_or("").to_string();
    let is_form = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut pairs = Vec::new();
    if is_form && (method == Method::POST || method == Method::PUT || method == Method::PATCH) {
        if let Ok(body) = to_bytes(req.into_body(), MAX_BODY).await {
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
    }
    pairs.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
    (method, path, Form(pairs))
}

/// Headers every v2 answer carries.
pub(super) fn base_headers(server: &Member) -> HeaderMap {
    let mut h = HeaderMap::new();
    // CORS headers come from the client port's access controller (`serve::access`).
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!("{:x}", server.headers().cluster_id())) {
        h.insert("x-etcd-cluster-id", v);
    }
    h
}

fn raft_headers(server: &Member, h: &mut HeaderMap) {
    let raft = server.raft_status();
    let (index, term) = (raft.applied_index, raft.term);
    h.insert("x-raft-index", HeaderValue::from(index));
    h.insert("x-raft-term", HeaderValue::from(term));
}

fn error_response(server: &Member, mut e: V2Error) -> Response {
    if let Some(rest) = e.cause.strip_prefix(KEYS_PREFIX) {
        e.cause = rest.to_string();
    }
    let mut h = base_headers(server);
    h.insert("x-etcd-index", HeaderValue::from(e.index));
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, h, e.body()).into_response()
}

fn event_response(server: &Member, event: Event, etcd_index: u64, no_value: bool) -> Response {
    let mut h = base_headers(server);
    h.insert("x-etcd-index", HeaderValue::from(etcd_index));
    raft_headers(server, &mut h);
    let status = if event.is_created() { StatusCode::CREATED } else { StatusCode::OK };
    let mut event = event.trimmed(KEYS_PREFIX);
    if no_value && ["set", "compareAndSwap", "create", "update"].contains(&event.action.as_str()) {
        event.node = None;
        event.prev_node = None;
    }
    (status, h, event.line()).into_response()
}

pub(super) fn method_not_allowed(allowed: &str) -> Response {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(allowed) {
        h.insert("allow", v);
    }
    h.insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    (StatusCode::METHOD_NOT_ALLOWED, h, "Method Not Allowed\n").into_response()
}

async fn keys(State(server): State<Member>, req: Request) -> Response {
    if ![Method::HEAD, Method::GET, Method::PUT, Method::POST, Method::DELETE]
        .contains(req.method())
    {
        return method_not_allowed("HEAD,GET,PUT,POST,DELETE");
    }
    let (method, path, form) = read_form(req).await;
    let key = path.strip_prefix("/v2/keys").unwrap_or("");
    let r = match parse(&method, key, &form) {
        Ok(r) => r,
        Err(e) => return error_response(&server, e),
    };
    let cmd = match r.method {
        Method::GET | Method::HEAD if r.wait => {
            return match server.v2_watch(&r.path, r.recursive, r.stream, r.wait_index) {
                Ok((watch, index)) => watch_response(&server, watch, index, r.stream),
                Err(e) => error_response(&server, e),
            };
        }
        Method::GET | Method::HEAD if r.quorum => {
            V2Command::QGet { path: r.path, recursive: r.recursive, sorted: r.sorted }
        }
        Method::GET | Method::HEAD => {
            return match server.v2_get(&r.path, r.recursive) {
                Ok((event, index)) => event_response(&server, event, index, false),
                Err(e) => error_response(&server, e),
            };
        }
        Method::POST => {
            V2Command::Post { path: r.path, value: r.value, dir: r.dir, expiration: r.expiration }
        }
        Method::PUT => V2Command::Put {
            path: r.path,
            value: r.value,
            dir: r.dir,
            prev_value: r.prev_value,
            prev_index: r.prev_index,
            prev_exist: r.prev_exist,
            refresh: r.refresh,
            expiration: r.expiration,
        },
        _ => V2Command::Delete {
            path: r.path,
            dir: r.dir,
            recursive: r.recursive,
            prev_value: r.prev_value,
            prev_index: r.prev_index,
        },
    };
    let out = match server.propose(Cmd::V2(cmd.encode())).await {
        Ok(Out::V2(out)) => {
            V2Outcome::decode(&out).map_err(|e| V2Error::new(code::RAFT_INTERNAL, e.to_string(), 0))
        }
        Ok(other) => {
            Err(V2Error::new(code::RAFT_INTERNAL, format!("unexpected response {other:?}"), 0))
        }
        Err(e) => Err(V2Error::new(code::RAFT_INTERNAL, e.to_string(), 0)),
    };
    match out {
        Ok(V2Outcome::Event { event, etcd_index }) => {
            event_response(&server, *event, etcd_index, r.no_value_on_success)
        }
        Ok(V2Outcome::Error(e)) | Err(e) => error_response(&server, e),
        Ok(V2Outcome::Nothing | V2Outcome::Migrated(_) | V2Outcome::Refused(_)) => error_response(
            &server,
            V2Error::new(code::RAFT_INTERNAL, "received response with no Event/Watcher!", 0),
        ),
    }
}

/// etcd's `handleKeyWatch`: headers at once, then one event (or a stream of them).
fn watch_response(server: &Member, watch: Watch, index: u64, stream: bool) -> Response {
    let mut h = base_headers(server);
    h.insert("x-etcd-index", HeaderValue::from(index));
    raft_headers(server, &mut h);
    let stopping = server.clone();
    let body = async_stream::stream! {
        match watch {
            Watch::Found(e) => {
                yield Ok::<_, std::convert::Infallible>((*e).trimmed(KEYS_PREFIX).line());
                // etcd answers a stream that starts in history with that one event and then
                // keeps the response open (its watcher is never registered for more): a
                // streaming client sees the same, not an end of stream it would retry on.
                if stream {
                    stopping.stopping().await;
                }
            }
            Watch::Waiting(mut rx) => loop {
                let next = tokio::select! {
                    e = rx.recv() => e,
                    _ = stopping.stopping() => None,
                };
                let Some(e) = next else { break };
                yield Ok(e.trimmed(KEYS_PREFIX).line());
                if !stream {
                    break;
                }
            },
        }
    };
    (StatusCode::OK, h, Body::from_stream(body)).into_response()
}

/// A JSON answer as Go's encoder writes it (fields in declaration order, a newline).
pub(super) fn json_line<T: serde::Serialize>(
    server: &Member,
    status: StatusCode,
    v: &T,
) -> Response {
    let body = serde_json::to_string(v).unwrap_or_default() + "\n";
    (status, base_headers(server), body).into_response()
}

async fn machines(State(server): State<Member>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return method_not_allowed("GET,HEAD");
    }
    let mut urls: Vec<String> = server.members().into_iter().flat_map(|m| m.client_ur_ls).collect();
    urls.sort();
    urls.join(", ").into_response()
}

/// When this process started serving (`startTime` of `/v2/stats/self`).
fn start_time() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(now_ns)
}

async fn stats_self(State(server): State<Member>, req: Request) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let raft = server.raft_status();
    let state = match raft.role {
        RaftRole::Leader => "StateLeader",
        RaftRole::Candidate => "StateCandidate",
        RaftRole::Follower => "StateFollower",
    };
    let leader = Some(raft.leader).filter(|id| *id != 0).map(|id| format!("{id:x}"));
    let leader = leader.unwrap_or_default();
    let started = start_time();
    let uptime = std::time::Duration::from_nanos((now_ns() - started).max(0) as u64);
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct LeaderInfo {
        leader: String,
        uptime: String,
        start_time: String,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SelfStats {
        name: String,
        id: String,
        state: &'static str,
        start_time: String,
        leader_info: LeaderInfo,
        recv_append_request_cnt: u64,
        send_append_request_cnt: u64,
    }
    let body = SelfStats {
        name: server.name().to_string(),
        id: format!("{:x}", server.member_id()),
        state,
        start_time: rfc3339_nano(started),
        leader_info: LeaderInfo {
            leader,
            uptime: format!("{uptime:?}"),
            start_time: rfc3339_nano(started),
        },
        recv_append_request_cnt: server.peer_stats().appends_received(),
        send_append_request_cnt: server.peer_stats().appends_sent(),
    };
    json_line(&server, StatusCode::OK, &body)
}

async fn stats_leader(State(server): State<Member>, req: Request) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    if !server.is_leader() {
        return json_line(
            &server,
            StatusCode::FORBIDDEN,
            &serde_json::json!({ "message": "not current leader" }),
        );
    }
    let seen = server.peer_stats().followers();
    let mut followers = serde_json::Map::new();
    for id in server.raft_node_ids() {
        if id == server.member_id() {
            continue;
        }
        let f = seen.get(&id).cloned().unwrap_or_default();
        let l = &f.latency;
        followers.insert(
            format!("{id:x}"),
            serde_json::json!({
                "latency": {"current": l.current, "average": l.average,
                            "standardDeviation": l.standard_deviation,
                            "minimum": l.minimum, "maximum": l.maximum},
                "counts": {"fail": f.fail, "success": f.success},
            }),
        );
    }
    #[derive(serde::Serialize)]
    struct LeaderStats {
        leader: String,
        followers: serde_json::Map<String, serde_json::Value>,
    }
    let body = LeaderStats { leader: format!("{:x}", server.member_id()), followers };
    json_line(&server, StatusCode::OK, &body)
}

async fn stats_store(State(server): State<Member>, req: Request) -> Response {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    json_line(&server, StatusCode::OK, &server.v2_stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(q: &str) -> Form {
        Form(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    #[test]
    fn requests_are_checked_as_etcd_checks_them() {
        let e = parse(&Method::PUT, "/a", &form("wait=true")).err().expect("refused");
        assert_eq!(
            (e.code, e.cause.as_str()),
            (209, r#""wait" can only be used with GET requests"#)
        );
        let e = parse(&Method::PUT, "/a", &form("ttl=x")).err().expect("refused");
        assert_eq!((e.code, e.status()), (202, 400));
        let e = parse(&Method::PUT, "/a", &form("refresh=true")).err().expect("refused");
        assert_eq!(e.code, 212);
        let e = parse(&Method::PUT, "/a", &form("prevValue=")).err().expect("refused");
        assert_eq!(e.code, 201);
        let r = parse(&Method::PUT, "//a/./b/", &form("value=1&prevExist=false")).expect("ok");
        assert_eq!((r.path.as_str(), r.prev_exist), ("/1/a/b", Some(false)));
        assert_eq!(percent_decode("/v2/keys/a%20b+c"), "/v2/keys/a b+c");
    }
}
