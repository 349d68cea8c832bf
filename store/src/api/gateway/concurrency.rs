//! The gateway's `/v3/lock/*` and `/v3/election/*` routes: etcd registers the v3lock and
//! v3election gateways on the client port beside the etcdserverpb ones, so curl users get
//! distributed locks and leader election too. `observe` streams like `/v3/watch`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::json::{self, In, Obj};
use super::{decode, grpc, reply, Gateway};
use crate::error::Result;
use crate::pb::v3electionpb::election_client::ElectionClient;
use crate::pb::v3electionpb::*;
use crate::pb::v3lockpb::lock_client::LockClient;
use crate::pb::v3lockpb::*;

/// `v3electionpb.LeaderKey`.
fn leader_key(k: &LeaderKey) -> String {
    Obj::new()
        .bytes("name", &k.name)
        .bytes("key", &k.key)
        .i64("rev", k.rev)
        .i64("lease", k.lease)
        .done()
}

/// The `leader` field of a request, as a `LeaderKey`.
fn leader_key_in(o: &In<'_>) -> Result<Option<LeaderKey>> {
    let Some(k) = o.obj("leader")? else { return Ok(None) };
    Ok(Some(LeaderKey {
        name: k.bytes("name")?,
        key: k.bytes("key")?,
        rev: k.int("rev")?,
        lease: k.int("lease")?,
    }))
}

/// `LeaderResponse` (also each line of `observe`).
fn leader_response(r: &LeaderResponse) -> String {
    Obj::new().msg("header", json::header(&r.header)).msg("kv", r.kv.as_ref().map(json::kv)).done()
}

route!(
    lock,
    LockClient,
    lock,
    |o: &In<'_>| Ok(LockRequest { name: o.bytes("name")?, lease: o.int("lease")? }),
    |r: &LockResponse| Obj::new()
        .msg("header", json::header(&r.header))
        .bytes("key", &r.key)
        .done()
);
route!(
    unlock,
    LockClient,
    unlock,
    |o: &In<'_>| Ok(UnlockRequest { key: o.bytes("key")? }),
    |r: &UnlockResponse| json::header_only(&r.header)
);
route!(
    campaign,
    ElectionClient,
    campaign,
    |o: &In<'_>| Ok(CampaignRequest {
        name: o.bytes("name")?,
        lease: o.int("lease")?,
        value: o.bytes("value")?,
    }),
    |r: &CampaignResponse| Obj::new()
        .msg("header", json::header(&r.header))
        .msg("leader", r.leader.as_ref().map(leader_key))
        .done()
);
route!(
    proclaim,
    ElectionClient,
    proclaim,
    |o: &In<'_>| Ok(ProclaimRequest { leader: leader_key_in(o)?, value: o.bytes("value")? }),
    |r: &ProclaimResponse| json::header_only(&r.header)
);
route!(
    leader,
    ElectionClient,
    leader,
    |o: &In<'_>| Ok(LeaderRequest { name: o.bytes("name")? }),
    leader_response
);
route!(
    resign,
    ElectionClient,
    resign,
    |o: &In<'_>| Ok(ResignRequest { leader: leader_key_in(o)? }),
    |r: &ResignResponse| json::header_only(&r.header)
);

/// `/v3/election/observe`: one line per leader the election has, until the client goes away.
pub(super) async fn observe(
    State(gw): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match decode(&body, |o: &In<'_>| Ok(LeaderRequest { name: o.bytes("name")? })) {
        Ok(r) => r,
        Err(status) => return reply(Err(status)),
    };
    let mut client = ElectionClient::new(gw.channel.clone()).max_decoding_message_size(usize::MAX);
    match client.observe(grpc(&headers, request)).await {
        Ok(stream) => super::watch::lines(stream.into_inner(), leader_response),
        Err(status) => reply(Err(status)),
    }
}
