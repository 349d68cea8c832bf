//! Leases: which exist, their TTLs and attached keys (applied through raft, deterministic),
//! and when each expires (local timers, meaningful on the leader only).
//!
//! As etcd without checkpoints, a lease's timer restarts at its full TTL whenever a member
//! starts or becomes leader; only the leader proposes revocation of expired leases.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{Cf, Storage};

/// etcd's upper bound on a lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A lease as stored in `Cf::Lease`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The lease id.
    pub id: i64,
    /// The granted TTL in seconds (after raising to the minimum).
    pub ttl: i64,
}

struct Lease {
    ttl: i64,
    keys: BTreeSet<Vec<u8>>,
    expiry: Instant,
}

/// What `time_to_live` reports.
#[derive(Debug, Clone)]
pub struct LeaseStatus {
    /// Whole seconds until expiry (rounded down, as etcd), as the leader sees it.
    pub remaining: i64,
    /// The granted TTL.
    pub granted: i64,
    /// Keys attached, in order.
    pub keys: Vec<Vec<u8>>,
}

/// The lease table of a member.
pub struct Lessor {
    storage: Storage,
    min_ttl: i64,
    leases: Mutex<HashMap<i64, Lease>>,
}

impl Lessor {
    /// Loads every stored lease and re-attaches `keys` (key, lease) from the MVCC store.
    pub fn open(storage: Storage, min_ttl: i64, keys: Vec<(Vec<u8>, i64)>) -> Result<Lessor> {
        let leases = load(&storage, keys)?;
        Ok(Lessor { storage, min_ttl, leases: Mutex::new(leases) })
    }

    /// Re-reads every lease from the database (after a snapshot was installed).
    pub fn reload(&self, keys: Vec<(Vec<u8>, i64)>) -> Result<()> {
        let fresh = load(&self.storage, keys)?;
        *self.lock() = fresh;
        Ok(())
    }
}

fn load(storage: &Storage, keys: Vec<(Vec<u8>, i64)>) -> Result<HashMap<i64, Lease>> {
    let mut leases = HashMap::new();
    let now = Instant::now();
    for item in storage.db().iterator_cf(storage.cf(Cf::Lease), rocksdb::IteratorMode::Start) {
        let (_, value) = item?;
        let rec: LeaseRecord =
            bincode::deserialize(&value).map_err(|e| Error::internal("decode lease", e))?;
        leases.insert(
            rec.id,
            Lease { ttl: rec.ttl, keys: BTreeSet::new(), expiry: now + secs(rec.ttl) },
        );
    }
    for (key, id) in keys {
        if let Some(l) = leases.get_mut(&id) {
            l.keys.insert(key);
        }
    }
    Ok(leases)
}

impl Lessor {
    /// Applies a grant: records the lease with its TTL raised to the minimum. Returns the TTL.
    pub fn grant(&self, batch: &mut WriteBatch, id: i64, ttl: i64) -> Result<i64> {
        if ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        let mut leases = self.lock();
        if leases.contains_key(&id) {
            return Err(Error::LeaseExist);
        }
        let ttl = ttl.max(self.min_ttl);
        let rec = LeaseRecord { id, ttl };
        let bytes = bincode::serialize(&rec).map_err(|e| Error::internal("encode lease", e))?;
        batch.put_cf(self.storage.cf(Cf::Lease), id.to_be_bytes(), bytes);
        leases.insert(id, Lease { ttl, keys: BTreeSet::new(), expiry: Instant::now() + secs(ttl) });
        Ok(ttl)
    }

    /// Applies a revoke: forgets the lease and returns its keys, which the caller deletes.
    pub fn revoke(&self, batch: &mut WriteBatch, id: i64) -> Result<Vec<Vec<u8>>> {
        let lease = self.lock().remove(&id).ok_or(Error::LeaseNotFound)?;
        batch.delete_cf(self.storage.cf(Cf::Lease), id.to_be_bytes());
        Ok(lease.keys.into_iter().collect())
    }

    /// Whether a lease exists (puts to a missing lease fail).
    pub fn exists(&self, id: i64) -> bool {
        self.lock().contains_key(&id)
    }

    /// Moves `key` from lease `old` to lease `new` (either may be 0 for none).
    pub fn reattach(&self, key: &[u8], old: i64, new: i64) {
        if old == new {
            return;
        }
        let mut leases = self.lock();
        if let Some(l) = leases.get_mut(&old) {
            l.keys.remove(key);
        }
        if let Some(l) = leases.get_mut(&new) {
            l.keys.insert(key.to_vec());
        }
    }

    /// Renews a lease's timer (keep-alive, leader only); returns its TTL.
    pub fn renew(&self, id: i64) -> Result<i64> {
        let mut leases = self.lock();
        let lease = leases.get_mut(&id).ok_or(Error::LeaseNotFound)?;
        lease.expiry = Instant::now() + secs(lease.ttl);
        Ok(lease.ttl)
    }

    /// Restarts every timer at its full TTL, as etcd's lessor does on promotion.
    pub fn rearm_all(&self) {
        let now = Instant::now();
        for lease in self.lock().values_mut() {
            lease.expiry = now + secs(lease.ttl);
        }
    }

    /// Leases whose timer ran out, oldest first, at most `limit`.
    pub fn expired(&self, limit: usize) -> Vec<i64> {
        let now = Instant::now();
        let leases = self.lock();
        let mut out: Vec<(Instant, i64)> =
            leases.iter().filter(|(_, l)| l.expiry <= now).map(|(id, l)| (l.expiry, *id)).collect();
        out.sort();
        out.into_iter().take(limit).map(|(_, id)| id).collect()
    }

    /// A lease's remaining time, TTL and keys.
    pub fn status(&self, id: i64) -> Option<LeaseStatus> {
        let leases = self.lock();
        let lease = leases.get(&id)?;
        let left = lease.expiry.saturating_duration_since(Instant::now());
        // Whole seconds left, rounded down as etcd's `int64(Remaining().Seconds())`: a lease
        // granted for 300 s reports 299 right after the grant.
        let remaining = i64::try_from(left.as_secs()).unwrap_or(i64::MAX);
        Some(LeaseStatus {
            remaining,
            granted: lease.ttl,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    /// Every lease id, ascending.
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}
