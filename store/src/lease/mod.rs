//! Leases: which exist, their TTLs and attached keys (applied through raft, deterministic),
//! and when each expires (local timers, meaningful on the leader only).
//!
//! As etcd without checkpoints, a lease's timer restarts at its full TTL whenever a member
//! starts or becomes leader; only the leader proposes revocation of expired leases.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

// tokio's clock (the OS clock outside tests), so tests can run timers on paused time.
use tokio::time::Instant;

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
        crate::metrics::LEASE_GRANTED.inc();
        crate::metrics::LEASE_TTL.observe(ttl as f64);
        Ok(ttl)
    }

    /// Applies a revoke: forgets the lease and returns its keys, which the caller deletes.
    pub fn revoke(&self, batch: &mut WriteBatch, id: i64) -> Result<Vec<Vec<u8>>> {
        let lease = self.lock().remove(&id).ok_or(Error::LeaseNotFound)?;
        batch.delete_cf(self.storage.cf(Cf::Lease), id.to_be_bytes());
        crate::metrics::LEASE_REVOKED.inc();
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
        crate::metrics::LEASE_RENEWED.inc();
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

#[cfg(test)]
mod tests {
    //! Timers on tokio's paused clock, over a real RocksDB in a temporary directory.
    use super::*;

    fn lessor(min_ttl: i64) -> (tempfile::TempDir, Lessor) {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("storage");
        let lessor = Lessor::open(storage, min_ttl, Vec::new()).expect("lessor");
        (dir, lessor)
    }

    fn grant(l: &Lessor, id: i64, ttl: i64) -> i64 {
        let mut batch = WriteBatch::default();
        let ttl = l.grant(&mut batch, id, ttl).expect("grant");
        l.storage.db().write(batch).expect("write");
        ttl
    }

    async fn advance_ms(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_expires_after_its_ttl_unless_kept_alive() {
        let (_dir, l) = lessor(1);
        assert_eq!(grant(&l, 1, 10), 10);
        assert_eq!(grant(&l, 2, 5), 5);
        advance_ms(4_999).await;
        assert!(l.expired(10).is_empty());
        advance_ms(1).await;
        assert_eq!(l.expired(10), vec![2]);
        // A keep-alive restarts lease 1's timer at its full TTL.
        assert_eq!(l.renew(1), Ok(10));
        advance_ms(9_999).await;
        assert_eq!(l.expired(10), vec![2], "lease 1 was renewed 9.999 s ago");
        advance_ms(1).await;
        assert_eq!(l.expired(10), vec![2, 1], "oldest expiry first");
        assert_eq!(l.expired(1), vec![2], "at most `limit`");
        // Expired is not revoked: only a revoke (through raft) removes a lease.
        assert!(l.exists(1) && l.exists(2));
    }

    #[tokio::test(start_paused = true)]
    async fn time_to_live_counts_whole_seconds_down_as_etcd() {
        let (_dir, l) = lessor(1);
        grant(&l, 7, 300);
        let status = l.status(7).expect("lease");
        assert_eq!((status.remaining, status.granted), (300, 300));
        advance_ms(1).await;
        assert_eq!(l.status(7).expect("lease").remaining, 299, "etcd rounds down");
        advance_ms(299_999).await;
        assert_eq!(l.status(7).expect("lease").remaining, 0);
        advance_ms(5_000).await;
        assert_eq!(l.status(7).expect("lease").remaining, 0, "never negative");
        assert!(l.status(8).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn short_ttls_are_raised_and_a_new_leader_rearms_every_timer() {
        let (_dir, l) = lessor(5);
        assert_eq!(grant(&l, 1, 2), 5, "raised to the minimum TTL");
        advance_ms(4_000).await;
        l.rearm_all();
        advance_ms(4_999).await;
        assert!(l.expired(10).is_empty(), "the timer restarted at promotion");
        advance_ms(1).await;
        assert_eq!(l.expired(10), vec![1]);
        assert_eq!(l.renew(9), Err(Error::LeaseNotFound));
        let mut batch = WriteBatch::default();
        assert_eq!(l.grant(&mut batch, 1, 60), Err(Error::LeaseExist));
        assert_eq!(l.grant(&mut batch, 2, MAX_LEASE_TTL + 1), Err(Error::LeaseTtlTooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_follow_their_lease_and_a_reload_restarts_timers() {
        let (_dir, l) = lessor(1);
        grant(&l, 1, 10);
        grant(&l, 2, 20);
        l.reattach(b"k", 0, 1);
        l.reattach(b"k", 1, 2);
        l.reattach(b"j", 0, 2);
        assert!(l.status(1).expect("lease 1").keys.is_empty());
        assert_eq!(l.status(2).expect("lease 2").keys, vec![b"j".to_vec(), b"k".to_vec()]);
        advance_ms(15_000).await;
        assert_eq!(l.expired(10), vec![1]);
        // A restart (or a snapshot install) reloads with fresh timers, keys from the store.
        l.reload(vec![(b"k".to_vec(), 2)]).expect("reload");
        assert!(l.expired(10).is_empty());
        assert_eq!(l.status(2).expect("lease 2").keys, vec![b"k".to_vec()]);
        let mut batch = WriteBatch::default();
        assert_eq!(l.revoke(&mut batch, 2), Ok(vec![b"k".to_vec()]));
        l.storage.db().write(batch).expect("write");
        assert_eq!(l.ids(), vec![1]);
    }
}
