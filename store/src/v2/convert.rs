//! Converting a member's own v2 store (`crate::v2`) into v3 keys, in one MVCC transaction:
//! every key at one revision, path → key, values kept, directories dropped, TTL'd keys
//! attached to leases granted with their remaining TTL (one lease per distinct TTL), unless
//! `no_ttl`. Used offline (`oxcd migrate --data-dir`) and online, inside the apply of one
//! replicated command (`oxcd migrate --endpoints`), so every member converts identically.
//!
//! Safe to re-run: a v3 key that already holds the v2 value is left alone; one holding
//! another value refuses the whole conversion unless `overwrite`.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lease::Lessor;
use crate::mvcc::MvccWriter;

/// How to convert.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertOptions {
    /// Write TTL'd keys without leases.
    pub no_ttl: bool,
    /// Replace v3 keys holding other values.
    pub overwrite: bool,
}

/// What a conversion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converted {
    /// Keys written, by path, with the lease each got (0: none).
    pub written: Vec<(String, i64)>,
    /// Keys already holding their v2 value (left alone).
    pub unchanged: usize,
    /// Leases granted.
    pub leases: usize,
    /// The revision the keys were written at (the store's revision if nothing was written).
    pub revision: i64,
}

/// Existing v3 keys holding other values, and the conversion was not told to overwrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "refusing to overwrite {count} existing v3 key(s), e.g. {examples} (--overwrite replaces them)"
)]
pub struct WouldOverwrite {
    /// How many.
    pub count: usize,
    /// A few of them.
    pub examples: String,
}

/// A key moving from one lease to another, for the lessor's in-memory attachments.
pub type LeaseMove = (Vec<u8>, i64, i64);

/// The first lease id tried for converted keys ("v2" in the top bytes), so they are easy to
/// tell from client-granted leases; the next free id is taken, the same on every member.
const LEASE_ID_BASE: i64 = 0x7632 << 48;

/// The whole seconds left until `expire` (unix ns) as of `now`, rounded up as etcd's
/// migration rounds a key's TTL; for an expiry still ahead.
pub fn remaining_ttl(expire: i64, now: i64) -> i64 {
    (expire - now + 999_999_999) / 1_000_000_000
}

/// Converts `keys` (path, value, expiry in unix ns) as of `now` (unix ns). Keys already
/// expired by `now` are left out. Returns what was done and the lease moves to make.
pub fn convert(
    w: &mut MvccWriter<'_>,
    lessor: &Lessor,
    keys: &[(String, String, Option<i64>)],
    now: i64,
    opts: ConvertOptions,
) -> Result<std::result::Result<(Converted, Vec<LeaseMove>), WouldOverwrite>> {
    let mut todo = Vec::new();
    let mut conflicts = Vec::new();
    let mut unchanged = 0;
    {
        let txn = w.txn();
        for (path, value, expire) in keys {
            let remaining = match expire {
                Some(at) if *at <= now => continue,
                Some(at) if !opts.no_ttl => Some(remaining_ttl(*at, now)),
                _ => None,
            };
            match txn.value_of(path.as_bytes())? {
                Some(kv) if kv.value == value.as_bytes() => unchanged += 1,
                Some(_) if !opts.overwrite => conflicts.push(path.clone()),
                _ => todo.push((path, value, remaining)),
            }
        }
    }
    if !conflicts.is_empty() {
        let examples: Vec<_> = conflicts.iter().take(3).cloned().collect();
        return Ok(Err(WouldOverwrite { count: conflicts.len(), examples: examples.join(", ") }));
    }
    // One lease per distinct remaining TTL, granted before the keys are written.
    let mut ttls: Vec<i64> = todo.iter().filter_map(|(_, _, t)| *t).collect();
    ttls.sort_unstable();
    ttls.dedup();
    let mut lease_of = std::collections::BTreeMap::new();
    let mut next_id = LEASE_ID_BASE;
    for ttl in &ttls {
        while lessor.exists(next_id) {
            next_id += 1;
        }
        lessor.grant(w.batch(), next_id, *ttl)?;
        lease_of.insert(*ttl, next_id);
        next_id += 1;
    }
    let mut written = Vec::with_capacity(todo.len());
    let mut moves = Vec::new();
    let mut txn = w.txn();
    for (path, value, ttl) in todo {
        let lease = ttl.and_then(|t| lease_of.get(&t).copied()).unwrap_or(0);
        let replaced = txn.put(path.as_bytes(), value.clone().into_bytes(), lease);
        moves.push((path.as_bytes().to_vec(), replaced.map(|c| c.lease).unwrap_or(0), lease));
        written.push((path.clone(), lease));
    }
    let revision = txn.finish();
    Ok(Ok((Converted { written, unchanged, leases: ttls.len(), revision }, moves)))
}
