//! Range execution, shared by plain reads and reads inside a write transaction.
//!
//! Split in two so a plain read can drop the index lock before touching RocksDB: `plan` picks
//! the keys under the lock (filters, sort and limit need only the index), `fetch` reads values.

use super::index::{KeyIndex, KeyRev};
use super::key_range::KeyRange;
use super::revision::Revision;
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use crate::pb::mvccpb::KeyValue;

/// The keys a range will return, chosen from the index.
pub(crate) struct RangePlan {
    picked: Vec<(Vec<u8>, KeyRev)>,
    count: usize,
    header_rev: i64,
    sort: Option<(SortTarget, SortOrder)>,
    limit: usize,
    keys_only: bool,
    count_only: bool,
}

/// Chooses the keys of `req`, read at `req.revision` or `default_rev`, as etcd's applier does:
/// filters and sorting fetch everything, otherwise one extra key tells `more`.
pub(crate) fn plan(
    index: &KeyIndex,
    req: &RangeRequest,
    current: i64,
    compacted: i64,
    default_rev: i64,
) -> Result<RangePlan> {
    let at = if req.revision <= 0 { default_rev } else { req.revision };
    if req.revision > current {
        return Err(Error::FutureRev);
    }
    if at < compacted {
        return Err(Error::Compacted);
    }
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    } else if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None; // the index already yields keys in ascending order
    }
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let limit = usize::try_from(req.limit.max(0)).unwrap_or(usize::MAX);
    let fetch_limit =
        if order != SortOrder::None || filtered || limit == 0 { 0 } else { limit + 1 };
    let range = KeyRange::new(&req.key, &req.range_end);
    let (found, count) = index.range_at(&range, at, fetch_limit, req.count_only);
    let mut picked: Vec<(Vec<u8>, KeyRev)> = found
        .into_iter()
        .filter(|(_, c)| {
            !(req.max_mod_revision != 0 && c.rev.main > req.max_mod_revision
                || req.min_mod_revision != 0 && c.rev.main < req.min_mod_revision
                || req.max_create_revision != 0 && c.create > req.max_create_revision
                || req.min_create_revision != 0 && c.create < req.min_create_revision)
        })
        .map(|(k, c)| (k.to_vec(), c))
        .collect();
    let sort = (order != SortOrder::None).then_some((target, order));
    if let Some((target, order)) = sort {
        if target != SortTarget::Value {
            picked.sort_by(|a, b| {
                let ord = match target {
                    SortTarget::Key | SortTarget::Value => a.0.cmp(&b.0),
                    SortTarget::Version => a.1.version.cmp(&b.1.version),
                    SortTarget::Create => a.1.create.cmp(&b.1.create),
                    SortTarget::Mod => a.1.rev.cmp(&b.1.rev),
                };
                if order == SortOrder::Descend {
                    ord.reverse()
                } else {
                    ord
                }
            });
        }
    }
    Ok(RangePlan {
        picked,
        count,
        header_rev: current,
        sort,
        limit,
        keys_only: req.keys_only,
        count_only: req.count_only,
    })
}

impl RangePlan {
    /// Reads the values the plan needs through `read` (revision → stored value) and builds
    /// the response.
    pub(crate) fn fetch(
        mut self,
        read: impl FnOnce(&[Revision]) -> Result<Vec<KeyValue>>,
    ) -> Result<RangeResponse> {
        let by_value = matches!(self.sort, Some((SortTarget::Value, _)));
        if !by_value && self.limit > 0 && self.picked.len() > self.limit {
            self.picked.truncate(self.limit + 1);
        }
        let mut kvs = if self.count_only {
            Vec::new()
        } else if self.keys_only && !by_value {
            self.picked.into_iter().map(|(key, c)| key_only(key, &c)).collect()
        } else {
            let revs: Vec<Revision> = self.picked.iter().map(|(_, c)| c.rev).collect();
            read(&revs)?
        };
        if let Some((SortTarget::Value, order)) = self.sort {
            kvs.sort_by(|a, b| a.value.cmp(&b.value));
            if order == SortOrder::Descend {
                kvs.reverse();
            }
        }
        let mut more = false;
        if self.limit > 0 && kvs.len() > self.limit {
            kvs.truncate(self.limit);
            more = true;
        }
        if self.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: Some(ResponseHeader { revision: self.header_rev, ..Default::default() }),
            kvs,
            more,
            count: self.count as i64,
        })
    }
}

fn key_only(key: Vec<u8>, c: &KeyRev) -> KeyValue {
    KeyValue {
        key,
        create_revision: c.create,
        mod_revision: c.rev.main,
        version: c.version,
        value: Vec::new(),
        lease: c.lease,
    }
}
