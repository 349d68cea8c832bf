//! The server side of etcd's concurrency recipes, shared by the Lock and Election services:
//! a waiter key `name/<lease hex>` attached to the caller's lease, ordered by create revision;
//! the owner is the waiter with the lowest create revision.
//!
//! Every read and write is made as the caller (`AuthInfo`), as etcd's servers make them
//! through a client that carries the caller's token: with auth enabled, the caller needs
//! WRITE on its waiter key and READ on the name's prefix.

use crate::error::{Error, Result};
use crate::member::handle::{AuthInfo, Member};
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::response_op::Response as OpResponse;
use crate::pb::etcdserverpb::{
    Compare, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;

/// An error of the recipe's reads and writes as etcd's Lock and Election servers return it:
/// they make them through a clientv3 client and hand its errors back as plain errors, which
/// gRPC sends with code Unknown and the same message (clients map the message back to the
/// typed error, e.g. `ErrLeaseNotFound`).
pub fn as_client_error(e: Error) -> tonic::Status {
    tonic::Status::unknown(tonic::Status::from(e).message())
}

/// The prefix every waiter key of `name` lives under.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// The end of the range covering every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The TTL of the session lease granted for a caller that names none: clientv3
/// concurrency's default session TTL, which etcd's lock and election servers use.
pub const SESSION_TTL: i64 = 60;

/// The lease a waiter key is attached to: the caller's, or, when it names none (lease 0), a
/// new lease of `SESSION_TTL` seconds that nobody keeps alive, as etcd's v3lock and
/// v3election servers open an orphaned session for such callers.
pub async fn session_lease(server: &Member, caller: &AuthInfo, lease: i64) -> Result<i64> {
    if lease != 0 {
        return Ok(lease);
    }
    let id = server.next_lease_id();
    let grant = LeaseGrantRequest { ttl: SESSION_TTL, id };
    match server.propose_as(caller, Cmd::LeaseGrant(grant)).await? {
        Out::LeaseGrant(resp) => Ok(resp.id),
        other => Err(crate::member::handle::unexpected(other)),
    }
}

/// Creates (or finds) the caller's waiter key; returns it with its create revision.
pub async fn enqueue(
    server: &Member,
    caller: &AuthInfo,
    name: &[u8],
    lease: i64,
    value: Vec<u8>,
) -> Result<KeyValue> {
    // Whether the lease exists is decided where the put applies (a follower may not have
    // applied a grant the leader has).
    if lease == 0 {
        return Err(Error::LeaseNotFound);
    }
    let mut key = prefix(name);
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    // The key is read in the same txn, so at the revision that created it or found it (as
    // etcd's concurrency recipes do), never afterwards from this member's possibly older
    // state: a follower's answer would otherwise depend on whether it applied the txn yet.
    let read = RequestOp {
        request: Some(Op::RequestRange(RangeRequest { key: key.clone(), ..Default::default() })),
    };
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.clone(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::CreateRevision(0)),
        }],
        success: vec![
            RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.clone(),
                    value,
                    lease,
                    ..Default::default()
                })),
            },
            read.clone(),
        ],
        failure: vec![read],
    };
    let resp = match server.propose_as(caller, Cmd::Txn(txn)).await? {
        Out::Txn(resp) => resp,
        other => return Err(crate::member::handle::unexpected(other)),
    };
    waiter_in(resp).ok_or(Error::LeaseNotFound)
}

/// The waiter key read by `enqueue`'s txn: the last op's range result of either branch.
fn waiter_in(resp: TxnResponse) -> Option<KeyValue> {
    match resp.responses.into_iter().last()?.response? {
        OpResponse::ResponseRange(range) => range.kvs.into_iter().next(),
        _ => None,
    }
}

/// The current owner: the waiter with the lowest create revision.
pub async fn owner(server: &Member, caller: &AuthInfo, name: &[u8]) -> Result<Option<KeyValue>> {
    let p = prefix(name);
    let req = RangeRequest {
        range_end: prefix_end(&p),
        key: p,
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    };
    server.linearizable_read().await?;
    Ok(server.range(caller, req).await?.kvs.into_iter().next())
}

/// Waits until `mine` owns `name`. Fails if the key disappears (its lease ended).
pub async fn wait_until_owner(
    server: &Member,
    caller: &AuthInfo,
    name: &[u8],
    mine: &KeyValue,
) -> Result<()> {
    let mut applied = server.subscribe_applied();
    loop {
        match get(server, caller, &mine.key).await? {
            Some(kv) if kv.create_revision == mine.create_revision => {}
            _ => return Err(Error::LeaseNotFound),
        }
        if owner(server, caller, name).await?.is_some_and(|o| o.key == mine.key) {
            return Ok(());
        }
        applied.changed().await.map_err(|_| Error::Stopped)?;
    }
}

/// Reads one key linearizably.
pub async fn get(server: &Member, caller: &AuthInfo, key: &[u8]) -> Result<Option<KeyValue>> {
    server.linearizable_read().await?;
    let req = RangeRequest { key: key.to_vec(), ..Default::default() };
    Ok(server.range(caller, req).await?.kvs.into_iter().next())
}

/// Deletes a key; returns the revision after.
pub async fn delete(server: &Member, caller: &AuthInfo, key: &[u8]) -> Result<i64> {
    let req =
        crate::pb::etcdserverpb::DeleteRangeRequest { key: key.to_vec(), ..Default::default() };
    match server.propose_as(caller, Cmd::DeleteRange(req)).await? {
        Out::DeleteRange(resp) => Ok(resp.header.map(|h| h.revision).unwrap_or_default()),
        other => Err(crate::member::handle::unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
