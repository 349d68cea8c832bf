//! The KV service: validation as etcd's `v3rpc/key.go`, then reads from the store or writes
//! through raft.

use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::member::handle::{
    is_read_only, is_serializable, unexpected, AuthInfo, KeyRange, Member,
};
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;

/// etcd's KV service.
pub struct KvService {
    server: Member,
}

impl KvService {
    /// The service over a member.
    pub fn new(server: Member) -> KvService {
        KvService { server }
    }

    /// etcd's `doSerialize`: the caller's READ permission is checked before the read, and the
    /// answer is refused if the auth store changed while it was read.
    async fn range(&self, caller: &AuthInfo, req: RangeRequest) -> Result<RangeResponse> {
        check_range(&req)?;
        if !req.serializable {
            self.server.linearizable_read().await?;
        }
        let mut resp = self.server.range(caller, req).await?;
        self.server.headers().stamp(&mut resp.header);
        Ok(resp)
    }

    /// Writes carry the caller to apply, which checks the permissions there (etcd's
    /// `authApplierV3`), against the auth store as of that entry.
    async fn put(&self, caller: &AuthInfo, req: PutRequest) -> Result<PutResponse> {
        check_put(&req)?;
        match self.server.propose_as(caller, Cmd::Put(req)).await? {
            Out::Put(mut resp) => {
                self.server.headers().stamp(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        caller: &AuthInfo,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        check_delete(&req)?;
        match self.server.propose_as(caller, Cmd::DeleteRange(req)).await? {
            Out::DeleteRange(mut resp) => {
                self.server.headers().stamp(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(other)),
        }
    }

    /// A read-only txn is checked here as a range is (every compare and range of both
    /// branches); any other goes through raft with the caller, checked at apply.
    async fn txn(&self, caller: &AuthInfo, req: TxnRequest) -> Result<TxnResponse> {
        check_txn(&req, self.server.config().max_txn_ops)?;
        let mut resp = if is_read_only(&req) {
            if !is_serializable(&req) {
                self.server.linearizable_read().await?;
            }
            self.server.read_only_txn(caller, req).await?
        } else {
            match self.server.propose_as(caller, Cmd::Txn(req)).await? {
                Out::Txn(resp) => resp,
                other => return Err(unexpected(other)),
            }
        };
        self.server.headers().stamp(&mut resp.header);
        Ok(resp)
    }

    /// etcd 3.5 checks no permission for a compaction, only that a token is valid.
    async fn compact(
        &self,
        caller: &AuthInfo,
        req: CompactionRequest,
    ) -> Result<CompactionResponse> {
        match self.server.propose_as(caller, Cmd::Compaction(req)).await? {
            Out::Compaction(mut resp) => {
                self.server.headers().stamp(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(other)),
        }
    }
}

/// The caller of a request and its message.
async fn parts<T>(server: &Member, request: Request<T>) -> Result<(AuthInfo, T)> {
    let caller = super::caller(server, request.metadata()).await?;
    Ok((caller, request.into_inner()))
}

fn check_range(req: &RangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if SortOrder::try_from(req.sort_order).is_err()
        || SortTarget::try_from(req.sort_target).is_err()
    {
        return Err(Error::InvalidArgument("etcdserver: invalid sort option".into()));
    }
    Ok(())
}

fn check_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

fn check_delete(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest` plus `checkIntervals`: op limits, each op valid, and no key put
/// twice (or put and deleted) on the same branch.
fn check_txn(req: &TxnRequest, max_ops: usize) -> Result<()> {
    if req.compare.len() > max_ops || req.success.len() > max_ops || req.failure.len() > max_ops {
        return Err(Error::TooManyOps);
    }
    for c in &req.compare {
        if c.key.is_empty() {
            return Err(Error::EmptyKey);
        }
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => check_range(r)?,
            Some(Op::RequestPut(p)) => check_put(p)?,
            Some(Op::RequestDeleteRange(d)) => check_delete(d)?,
            Some(Op::RequestTxn(t)) => check_txn(t, max_ops)?,
            None => {}
        }
    }
    branch_writes(&req.success)?;
    branch_writes(&req.failure)?;
    Ok(())
}

/// The keys put and ranges deleted by one branch (nested txns included); fails on overlap.
fn branch_writes(
    ops: &[crate::pb::etcdserverpb::RequestOp],
) -> Result<(Vec<Vec<u8>>, Vec<KeyRange>)> {
    let mut puts: Vec<Vec<u8>> = Vec::new();
    let mut dels: Vec<KeyRange> = Vec::new();
    for op in ops {
        match &op.request {
            Some(Op::RequestPut(p)) => {
                if puts.contains(&p.key) {
                    return Err(Error::DuplicateKey);
                }
                puts.push(p.key.clone());
            }
            Some(Op::RequestDeleteRange(d)) => dels.push(KeyRange::new(&d.key, &d.range_end)),
            Some(Op::RequestTxn(t)) => {
                // Each nested branch may run; either one must not collide with this branch.
                let mut nested_puts = Vec::new();
                for branch in [&t.success, &t.failure] {
                    let (p, d) = branch_writes(branch)?;
                    for key in &p {
                        if puts.contains(key) {
                            return Err(Error::DuplicateKey);
                        }
                    }
                    nested_puts.extend(p);
                    dels.extend(d);
                }
                nested_puts.sort();
                nested_puts.dedup();
                puts.extend(nested_puts);
            }
            _ => {}
        }
    }
    for key in &puts {
        if dels.iter().any(|d| d.contains(key)) {
            return Err(Error::DuplicateKey);
        }
    }
    Ok((puts, dels))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let (caller, request) = parts(&self.server, request).await?;
        Ok(Response::new(KvService::range(self, &caller, request).await?))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let (caller, request) = parts(&self.server, request).await?;
        Ok(Response::new(KvService::put(self, &caller, request).await?))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let (caller, request) = parts(&self.server, request).await?;
        Ok(Response::new(KvService::delete_range(self, &caller, request).await?))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let (caller, request) = parts(&self.server, request).await?;
        Ok(Response::new(KvService::txn(self, &caller, request).await?))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let (caller, request) = parts(&self.server, request).await?;
        Ok(Response::new(KvService::compact(self, &caller, request).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::RequestOp;

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest { key: key.into(), ..Default::default() })),
        }
    }

    fn del(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    /// Randomized request decoding (the stable-toolchain stand-in for a fuzz target, see
    /// `fuzz/README.md`): valid encodings of client requests, mutated at random (bytes
    /// flipped, inserted, deleted, truncated, spliced), decoded as every request message the
    /// client port and the peer link accept, then validated as the KV service validates them.
    /// Hostile bytes must give errors, never a panic or a stack overflow. Deterministic seed.
    #[test]
    fn hostile_request_bytes_never_panic() {
        use crate::pb::etcdserverpb as pb;
        use crate::pb::oxcdpb::InternalRequest;
        use prost::Message;

        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let range = pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            limit: 3,
            revision: 2,
            sort_order: 2,
            sort_target: 4,
            min_mod_revision: 1,
            ..Default::default()
        };
        let txn = TxnRequest {
            compare: vec![pb::Compare {
                key: b"k".to_vec(),
                target_union: Some(pb::compare::TargetUnion::Value(b"v".to_vec())),
                ..Default::default()
            }],
            success: vec![put("a"), del("b", "c")],
            failure: vec![RequestOp { request: Some(Op::RequestRange(range.clone())) }],
        };
        let nested = TxnRequest {
            success: vec![RequestOp { request: Some(Op::RequestTxn(txn.clone())) }, put("x")],
            ..Default::default()
        };
        let seeds: Vec<Vec<u8>> = vec![
            range.encode_to_vec(),
            nested.encode_to_vec(),
            PutRequest { key: b"k".to_vec(), value: vec![7; 40], lease: 9, ..Default::default() }
                .encode_to_vec(),
            pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: b"a".to_vec(),
                        range_end: vec![0],
                        filters: vec![0, 1],
                        ..Default::default()
                    },
                )),
            }
            .encode_to_vec(),
            InternalRequest {
                request: Some(Cmd::Txn(nested.clone())),
                auth: Some(crate::pb::oxcdpb::RequestAuth::default()),
            }
            .encode_to_vec(),
        ];
        // Every message type the services decode must survive every input.
        fn decode_all(bytes: &[u8]) {
            if let Ok(r) = RangeRequest::decode(bytes) {
                let _ = check_range(&r);
            }
            if let Ok(p) = PutRequest::decode(bytes) {
                let _ = check_put(&p);
            }
            if let Ok(d) = DeleteRangeRequest::decode(bytes) {
                let _ = check_delete(&d);
            }
            if let Ok(t) = TxnRequest::decode(bytes) {
                let _ = check_txn(&t, 128);
            }
            if let Ok(crate::pb::oxcdpb::InternalRequest { request: Some(Cmd::Txn(t)), .. }) =
                crate::pb::oxcdpb::InternalRequest::decode(bytes)
            {
                let _ = check_txn(&t, 128);
            }
            let _ = pb::WatchRequest::decode(bytes);
            let _ = pb::LeaseGrantRequest::decode(bytes);
            let _ = pb::LeaseKeepAliveRequest::decode(bytes);
            let _ = pb::CompactionRequest::decode(bytes);
            let _ = pb::AuthUserAddRequest::decode(bytes);
            let _ = pb::AuthRoleGrantPermissionRequest::decode(bytes);
            let _ = pb::MemberAddRequest::decode(bytes);
            let _ = pb::AlarmRequest::decode(bytes);
        }
        for i in 0..100_000usize {
            let mut bytes = seeds[i % seeds.len()].clone();
            for _ in 0..(1 + rand() % 4) {
                let at = (rand() as usize) % (bytes.len() + 1);
                match rand() % 5 {
                    0 if at < bytes.len() => bytes[at] ^= 1 << (rand() % 8),
                    1 => bytes.insert(at, rand() as u8),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    3 => bytes.truncate(at),
                    _ => {
                        let other = &seeds[(rand() as usize) % seeds.len()];
                        let from = (rand() as usize) % other.len();
                        let piece = other[from..].iter().take(1 + (rand() as usize) % 16).copied();
                        bytes.splice(at..at, piece.collect::<Vec<_>>());
                    }
                }
            }
            decode_all(&bytes);
        }
        // Txns nested about as deep as prost decodes (100 message levels, two per txn level:
        // the txn and its op): validation recurses per level and must not overflow the stack.
        let mut deep = TxnRequest::default();
        for _ in 0..45 {
            deep = TxnRequest {
                success: vec![RequestOp { request: Some(Op::RequestTxn(deep)) }],
                ..Default::default()
            };
        }
        let decoded = TxnRequest::decode(deep.encode_to_vec().as_slice()).expect("45 levels");
        assert_eq!(check_txn(&decoded, 128), Ok(()));
        let mut deeper = deep;
        for _ in 0..15 {
            deeper = TxnRequest {
                success: vec![RequestOp { request: Some(Op::RequestTxn(deeper)) }],
                ..Default::default()
            };
        }
        assert!(TxnRequest::decode(deeper.encode_to_vec().as_slice()).is_err(), "too deep");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let txn = |ops: Vec<RequestOp>| TxnRequest { success: ops, ..Default::default() };
        assert_eq!(check_txn(&txn(vec![put("a"), put("a")]), 128), Err(Error::DuplicateKey));
        assert_eq!(check_txn(&txn(vec![put("b"), del("a", "c")]), 128), Err(Error::DuplicateKey));
        assert_eq!(check_txn(&txn(vec![put("a"), put("b"), del("c", "d")]), 128), Ok(()));
        let too_many = txn((0..129).map(|i| put(&i.to_string())).collect());
        assert_eq!(check_txn(&too_many, 128), Err(Error::TooManyOps));
    }
}
