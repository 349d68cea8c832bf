//! Writes converted keys into a running v3 member (oxcd, or etcd) over gRPC: batched
//! transactions that only create keys (each compares `create_revision == 0`) unless told to
//! overwrite, TTL'd keys attached to leases granted with their remaining TTL.

use std::collections::{BTreeMap, BTreeSet};

use tonic::transport::Channel;

use super::v2_json::V3Key;
use super::MigrateError;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

/// Operations per transaction: below etcd's default `--max-txn-ops` of 128.
const OPS_PER_TXN: usize = 100;
/// Bytes of keys and values per transaction: below the default `--max-request-bytes`.
const BYTES_PER_TXN: usize = 1 << 20;

/// A connection to the v3 member being written.
pub struct V3Writer {
    url: String,
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    /// Leave TTLs out: keys are written without leases.
    no_ttl: bool,
}

/// What a bulk write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Keys written.
    pub keys: usize,
    /// Of those, keys attached to a lease.
    pub with_ttl: usize,
    /// Leases granted.
    pub leases: usize,
    /// The member's revision after the last write.
    pub revision: i64,
}

impl V3Writer {
    /// Connects to `endpoint` (`host:port` or a URL).
    pub async fn connect(endpoint: &str, no_ttl: bool) -> Result<V3Writer, MigrateError> {
        let url = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .map_err(|e| MigrateError::Config(format!("--endpoints {endpoint:?}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| MigrateError::Target { url: url.clone(), message: e.to_string() })?;
        Ok(V3Writer {
            url,
            kv: KvClient::new(channel.clone()).max_decoding_message_size(usize::MAX),
            lease: LeaseClient::new(channel),
            no_ttl,
        })
    }

    fn target(&self, s: tonic::Status) -> MigrateError {
        MigrateError::Target { url: self.url.clone(), message: s.message().to_string() }
    }

    /// Which of `keys` exist as v3 keys now.
    pub async fn existing(
        &mut self,
        keys: &BTreeSet<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, MigrateError> {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Ok(Vec::new());
        };
        let mut end = last.clone();
        end.push(0);
        let req = RangeRequest {
            key: first.clone(),
            range_end: end,
            keys_only: true,
            ..Default::default()
        };
        let resp = self.kv.range(req).await.map_err(|s| self.target(s))?.into_inner();
        Ok(resp.kvs.into_iter().map(|kv| kv.key).filter(|k| keys.contains(k)).collect())
    }

    /// Writes `keys`; unless `overwrite`, refuses (before writing anything) if any exists.
    pub async fn put_all(
        &mut self,
        keys: &[V3Key],
        overwrite: bool,
    ) -> Result<Written, MigrateError> {
        if !overwrite {
            let names: BTreeSet<Vec<u8>> = keys.iter().map(|k| k.key.clone()).collect();
            let existing = self.existing(&names).await?;
            if !existing.is_empty() {
                return Err(would_overwrite(&existing));
            }
        }
        let mut written = Written::default();
        // One lease per distinct TTL: keys that expire in the same second share it.
        let mut leases: BTreeMap<i64, i64> = BTreeMap::new();
        let mut batch: Vec<(Vec<u8>, Vec<u8>, i64)> = Vec::new();
        let mut bytes = 0;
        for k in keys {
            let lease = match k.ttl.filter(|_| !self.no_ttl) {
                Some(ttl) => {
                    if let std::collections::btree_map::Entry::Vacant(slot) = leases.entry(ttl) {
                        slot.insert(self.grant(ttl).await?);
                    }
                    written.with_ttl += 1;
                    leases[&ttl]
                }
                None => 0,
            };
            bytes += k.key.len() + k.value.len();
            batch.push((k.key.clone(), k.value.clone(), lease));
            if batch.len() >= OPS_PER_TXN || bytes >= BYTES_PER_TXN {
                written.revision = self.txn(std::mem::take(&mut batch), overwrite).await?;
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            written.revision = self.txn(batch, overwrite).await?;
        }
        written.keys = keys.len();
        written.leases = leases.len();
        Ok(written)
    }

    /// Writes one key, replacing any value (a change followed from the v2 source).
    pub async fn put(&mut self, key: &V3Key) -> Result<i64, MigrateError> {
        let lease = match key.ttl.filter(|_| !self.no_ttl) {
            Some(ttl) => self.grant(ttl).await?,
            None => 0,
        };
        let req = PutRequest {
            key: key.key.clone(),
            value: key.value.clone(),
            lease,
            ..Default::default()
        };
        let resp = self.kv.put(req).await.map_err(|s| self.target(s))?.into_inner();
        Ok(resp.header.map(|h| h.revision).unwrap_or(0))
    }

    /// Deletes a key, or every key under `prefix/` for a v2 directory.
    pub async fn delete(&mut self, key: &[u8], dir: bool) -> Result<i64, MigrateError> {
        let req = if dir {
            let mut start = key.to_vec();
            start.push(b'/');
            let mut end = key.to_vec();
            end.push(b'/' + 1);
            DeleteRangeRequest { key: start, range_end: end, ..Default::default() }
        } else {
            DeleteRangeRequest { key: key.to_vec(), ..Default::default() }
        };
        let resp = self.kv.delete_range(req).await.map_err(|s| self.target(s))?.into_inner();
        Ok(resp.header.map(|h| h.revision).unwrap_or(0))
    }

    /// Deletes each of `keys`.
    pub async fn delete_keys(&mut self, keys: &[Vec<u8>]) -> Result<(), MigrateError> {
        for k in keys {
            self.delete(k, false).await?;
        }
        Ok(())
    }

    async fn grant(&mut self, ttl: i64) -> Result<i64, MigrateError> {
        let resp = self
            .lease
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await
            .map_err(|s| self.target(s))?
            .into_inner();
        Ok(resp.id)
    }

    async fn txn(
        &mut self,
        batch: Vec<(Vec<u8>, Vec<u8>, i64)>,
        overwrite: bool,
    ) -> Result<i64, MigrateError> {
        let compare = if overwrite {
            Vec::new()
        } else {
            batch
                .iter()
                .map(|(key, _, _)| Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Create as i32,
                    key: key.clone(),
                    target_union: Some(TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                })
                .collect()
        };
        let keys: Vec<Vec<u8>> = batch.iter().map(|(k, _, _)| k.clone()).collect();
        let success = batch
            .into_iter()
            .map(|(key, value, lease)| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key,
                    value,
                    lease,
                    ..Default::default()
                })),
            })
            .collect();
        let req = TxnRequest { compare, success, failure: Vec::new() };
        let resp = self.kv.txn(req).await.map_err(|s| self.target(s))?.into_inner();
        if !resp.succeeded {
            // Someone created one of these keys since the check.
            let set = keys.into_iter().collect();
            let existing = self.existing(&set).await?;
            return Err(would_overwrite(&existing));
        }
        Ok(resp.header.map(|h| h.revision).unwrap_or(0))
    }
}

fn would_overwrite(existing: &[Vec<u8>]) -> MigrateError {
    let examples: Vec<String> =
        existing.iter().take(5).map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    MigrateError::WouldOverwrite { count: existing.len(), examples: examples.join(", ") }
}
