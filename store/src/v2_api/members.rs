//! etcd's v2 members API (`/v2/members`, as etcd 3.4 serves it with `--enable-v2`): list,
//! add (POST), remove (DELETE `/v2/members/<id>`), change peer URLs (PUT) and the leader.
//! `ETCDCTL_API=2 etcdctl member add|remove|update|list` and v2-era tooling drive a cluster
//! through it. Changes are the leader's: a follower passes them on over the client API.

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::http::{base_headers, json_line, method_not_allowed, MAX_BODY};
use crate::error::Error;
use crate::member::handle::Member;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberRemoveRequest, MemberUpdateRequest,
};

/// Every `/v2/members…` path (etcd dispatches on the method, then the rest of the path).
pub async fn members(State(server): State<Member>, req: Request) -> Response {
    let rest = req.uri().path().trim_start_matches("/v2/members").trim_start_matches('/');
    let rest = rest.to_string();
    let method = req.method().clone();
    match method {
        Method::GET => match rest.as_str() {
            "" => list(&server),
            "leader" => leader(&server),
            _ => http_error(&server, StatusCode::NOT_FOUND, "Not found"),
        },
        Method::POST => match peer_urls(req).await {
            Ok(urls) => add(&server, urls).await,
            Err((status, message)) => http_error(&server, status, &message),
        },
        Method::DELETE => match member_id(&rest) {
            Some(id) => remove(&server, id).await,
            None => not_found(&server, &rest),
        },
        Method::PUT => {
            let Some(id) = member_id(&rest) else { return not_found(&server, &rest) };
            match peer_urls(req).await {
                Ok(urls) => update(&server, id, urls).await,
                Err((status, message)) => http_error(&server, status, &message),
            }
        }
        _ => method_not_allowed("GET,POST,DELETE,PUT"),
    }
}

/// A member as `/v2/members` shows it (etcd's field order).
#[derive(serde::Serialize)]
struct MemberJson {
    id: String,
    name: String,
    #[serde(rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    client_urls: Vec<String>,
}

fn member_json(m: &PbMember) -> MemberJson {
    MemberJson {
        id: format!("{:x}", m.id),
        name: m.name.clone(),
        peer_urls: m.peer_ur_ls.clone(),
        client_urls: m.client_ur_ls.clone(),
    }
}

fn list(server: &Member) -> Response {
    #[derive(serde::Serialize)]
    struct Members {
        members: Vec<MemberJson>,
    }
    let members = server.members().iter().map(member_json).collect();
    json_line(server, StatusCode::OK, &Members { members })
}

fn leader(server: &Member) -> Response {
    let leader = Some(server.raft_status().leader).filter(|id| *id != 0);
    let found = leader.and_then(|id| server.members().into_iter().find(|m| m.id == id));
    match found {
        Some(m) => json_line(server, StatusCode::OK, &member_json(&m)),
        None => json_line(
            server,
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "message": "During election" }),
        ),
    }
}

async fn add(server: &Member, peer_urls: Vec<String>) -> Response {
    let added = match server.leader_client() {
        Ok(Some(leader)) => {
            let req = MemberAddRequest { peer_ur_ls: peer_urls, is_learner: false };
            let added = on_leader(server, ClusterClient::new(leader).member_add(req)).await;
            added.and_then(|r| r.member.ok_or(Error::MemberNotFound))
        }
        Ok(None) => server.add_member(peer_urls, false).await,
        Err(e) => Err(e),
    };
    match added {
        Ok(m) => json_line(server, StatusCode::CREATED, &member_json(&m)),
        Err(Error::MemberExist) => {
            http_error(server, StatusCode::CONFLICT, "membership: ID exists")
        }
        Err(Error::PeerUrlExist) => {
            http_error(server, StatusCode::CONFLICT, "membership: peerURL exists")
        }
        Err(e) => internal(server, e),
    }
}

async fn remove(server: &Member, id: u64) -> Response {
    let removed = match server.leader_client() {
        Ok(Some(leader)) => {
            let mut client = ClusterClient::new(leader);
            on_leader(server, client.member_remove(MemberRemoveRequest { id })).await.map(drop)
        }
        Ok(None) => server.remove_member(id).await,
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => no_content(server),
        Err(Error::MemberNotFound) => not_found(server, &format!("{id:x}")),
        Err(Error::MemberRemoved) => {
            http_error(server, StatusCode::GONE, &format!("Member permanently removed: {id:x}"))
        }
        Err(e) => internal(server, e),
    }
}

async fn update(server: &Member, id: u64, peer_urls: Vec<String>) -> Response {
    let updated = match server.leader_client() {
        Ok(Some(leader)) => {
            let req = MemberUpdateRequest { id, peer_ur_ls: peer_urls };
            on_leader(server, ClusterClient::new(leader).member_update(req)).await.map(drop)
        }
        Ok(None) => server.update_member(id, peer_urls).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(()) => no_content(server),
        Err(Error::PeerUrlExist) => {
            http_error(server, StatusCode::CONFLICT, "membership: peerURL exists")
        }
        Err(Error::MemberNotFound) => not_found(server, &format!("{id:x}")),
        Err(e) => internal(server, e),
    }
}

/// A membership change passed on to the leader: its answer, once this member has applied
/// the change too (as in etcd, where the member a client asked applies it before answering),
/// so the client's next read here (`etcdctl member add` lists the members right after)
/// sees it.
async fn on_leader<T>(
    server: &Member,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Error> {
    let answer = call.await.map_err(|status| {
        Error::from_client_status(&status)
            .unwrap_or_else(|| Error::internal("membership change on the leader", status.message()))
    })?;
    if let Err(e) = server.sync_to_read_index().await {
        tracing::warn!(error = %e, "catching up with a membership change made on the leader");
    }
    Ok(answer.into_inner())
}

/// The member id of a `/v2/members/<id>` path (hex, as etcd's `types.IDFromString`).
fn member_id(rest: &str) -> Option<u64> {
    u64::from_str_radix(rest, 16).ok()
}

/// The `peerURLs` of a JSON body, checked as etcd's `types.NewURLs` checks them (its
/// messages, status 400); a body that is not `application/json` gets 415, as in etcd.
async fn peer_urls(req: Request) -> Result<Vec<String>, (StatusCode, String)> {
    let ctype = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let ctype = match ctype.split_once(';') {
        Some((media, _)) => media.trim().to_ascii_lowercase(),
        None => ctype.to_string(),
    };
    if ctype != "application/json" {
        let message = format!("Bad Content-Type {ctype}, accept application/json");
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, message));
    }
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let body = to_bytes(req.into_body(), MAX_BODY).await.map_err(|e| bad(e.to_string()))?;
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "peerURLs", default)]
        peer_urls: Vec<String>,
    }
    let parsed: Body = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    crate::config::check_urls(&parsed.peer_urls).map_err(bad)?;
    Ok(parsed.peer_urls.iter().map(|u| u.trim().to_string()).collect())
}

fn no_content(server: &Member) -> Response {
    let mut h = base_headers(server);
    h.remove("content-type");
    (StatusCode::NO_CONTENT, h).into_response()
}

fn not_found(server: &Member, id: &str) -> Response {
    http_error(server, StatusCode::NOT_FOUND, &format!("No such member: {id}"))
}

/// What etcd's v2 `writeError` answers for any other error: a bare 500.
fn internal(server: &Member, e: Error) -> Response {
    tracing::warn!(error = %e, "v2 members request failed");
    http_error(server, StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// etcd's `httptypes.HTTPError`: `{"message":…}` without a trailing newline.
fn http_error(server: &Member, status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut h: HeaderMap = base_headers(server);
    h.insert("content-type", HeaderValue::from_static("application/json"));
    (status, h, body).into_response()
}
