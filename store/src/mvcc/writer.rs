//! Writes: one `MvccWriter` per batch of applied raft entries, one `TxnWrite` per etcd
//! revision inside it.
//!
//! The writer holds the index's write lock for the whole batch, so readers never see a
//! half-applied batch, and keeps an overlay (revision → the batch's event holding the written
//! key-value) so later entries of the same batch read them before they reach RocksDB. Nothing here is synced: the raft log is the
//! durable record, and the applied index travels in the same `WriteBatch` (see `apply`).

use std::collections::HashMap;
use std::sync::RwLockWriteGuard;

use prost::Message;
use rocksdb::WriteBatch;

use super::index::KeyRev;
use super::key_range::KeyRange;
use super::range;
use super::revision::Revision;
use super::store::{event_of, MvccState, MvccStore};
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::{RangeRequest, RangeResponse};
use crate::pb::mvccpb::{Event, KeyValue};
use crate::storage::schema::meta_keys;
use crate::storage::Cf;

/// Exclusive access to the store for one batch of applied entries.
pub struct MvccWriter<'a> {
    store: &'a MvccStore,
    state: RwLockWriteGuard<'a, MvccState>,
    batch: WriteBatch,
    /// Where this batch's writes are, as positions in `events` (each event holds the full
    /// key-value it wrote), so a write is kept once, not twice.
    overlay: HashMap<Revision, usize>,
    events: Vec<Event>,
}

impl<'a> MvccWriter<'a> {
    pub(crate) fn new(store: &'a MvccStore) -> MvccWriter<'a> {
        let state = store.state.write().unwrap_or_else(|e| e.into_inner());
        MvccWriter {
            store,
            state,
            batch: WriteBatch::default(),
            overlay: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// The batch every side effect of this apply goes into, so they land atomically.
    pub fn batch(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// The newest revision, including this batch's writes so far.
    pub fn current_revision(&self) -> i64 {
        self.state.current
    }

    /// The revision compacted up to.
    pub fn compacted_revision(&self) -> i64 {
        self.state.compacted
    }

    /// Starts the next revision's changes.
    pub fn txn(&mut self) -> TxnWrite<'_, 'a> {
        let main = self.state.current + 1;
        TxnWrite { w: self, main, sub: 0 }
    }

    /// Compacts history up to `rev`: reads below it fail afterwards and its rows are deleted.
    pub fn compact(&mut self, rev: i64) -> Result<()> {
        if rev <= self.state.compacted {
            return Err(Error::Compacted);
        }
        if rev > self.state.current {
            return Err(Error::FutureRev);
        }
        let started = std::time::Instant::now();
        self.state.compacted = rev;
        let dropped = self.state.index.compact(rev);
        crate::metrics::INDEX_COMPACTION_PAUSE_MS.observe(millis(started.elapsed()));
        crate::metrics::DB_COMPACTION_KEYS.inc_by(dropped.len() as u64);
        let cf = self.store.storage.cf(Cf::Kv);
        for r in dropped {
            self.overlay.remove(&r);
            self.batch.delete_cf(cf, r.to_bytes());
        }
        self.batch.put_cf(self.store.storage.cf(Cf::Meta), meta_keys::COMPACTED, rev.to_be_bytes());
        crate::metrics::DB_COMPACTION_TOTAL_MS.observe(millis(started.elapsed()));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        crate::metrics::DB_COMPACTION_LAST.set(now.map(|d| d.as_secs() as i64).unwrap_or(0));
        Ok(())
    }

    /// Marks where the next command starts, so it can be undone if it fails (`rollback`).
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            current: self.state.current,
            events: self.events.len(),
            batch_bytes: self.batch.size_in_bytes(),
            batch_count: self.batch.len(),
        }
    }

    /// Undoes everything written since `sp`: index entries, buffered rows, events and the
    /// revision, so a failed command leaves no write, no event and no consumed revision.
    /// (Compaction is not undone: it fails only before it changes anything.)
    pub fn rollback(&mut self, sp: Savepoint) -> Result<()> {
        for event in self.events.drain(sp.events..).rev() {
            let key = event.kv.map(|kv| kv.key).unwrap_or_default();
            if let Some(change) = self.state.index.pop(&key) {
                self.overlay.remove(&change.rev);
            }
        }
        self.state.current = sp.current;
        if self.batch.len() != sp.batch_count || self.batch.size_in_bytes() != sp.batch_bytes {
            self.batch = truncate_batch(&self.batch, sp.batch_bytes, sp.batch_count)?;
        }
        Ok(())
    }

    /// Writes the batch (unsynced: the raft log already holds these entries durably, and the
    /// next synced log append flushes the shared WAL) and returns the events, in order.
    pub fn commit(mut self) -> Result<Vec<Event>> {
        let meta = self.store.storage.cf(Cf::Meta);
        let current = self.state.current;
        self.batch.put_cf(meta, meta_keys::REVISION, current.to_be_bytes());
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(false);
        let timer = crate::metrics::BACKEND_COMMIT.start_timer();
        self.store.storage.db().write_opt(std::mem::take(&mut self.batch), &opts)?;
        timer.observe_duration();
        Ok(std::mem::take(&mut self.events))
    }

    fn read_value(&self, rev: Revision) -> Result<Option<KeyValue>> {
        match self.overlay.get(&rev).and_then(|&i| self.events.get(i)) {
            Some(event) => Ok(event.kv.clone()),
            None => self.store.read_rev(rev),
        }
    }
}

/// A duration in milliseconds, the unit of etcd's compaction histograms.
fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A point in a writer's batch to which a failed command rolls back.
#[derive(Debug, Clone, Copy)]
pub struct Savepoint {
    current: i64,
    events: usize,
    batch_bytes: usize,
    batch_count: usize,
}

/// RocksDB's write batch is a 12-byte header (8-byte sequence, 4-byte little-endian record
/// count) followed by the records in order, so its first `bytes` with the count set to
/// `count` are exactly the batch as it was (the Rust binding has no save points).
fn truncate_batch(batch: &WriteBatch, bytes: usize, count: usize) -> Result<WriteBatch> {
    const HEADER: usize = 12;
    let data = batch.data();
    if bytes < HEADER || bytes > data.len() {
        return Err(Error::Internal(format!(
            "write batch savepoint at {bytes} bytes outside a batch of {}",
            data.len()
        )));
    }
    let mut kept = data[..bytes].to_vec();
    let count = u32::try_from(count).map_err(|e| Error::internal("write batch count", e))?;
    kept[8..HEADER].copy_from_slice(&count.to_le_bytes());
    Ok(WriteBatch::from_data(&kept))
}

/// The changes of one revision. Every change gets the same main revision and its own sub
/// revision; the revision advances only if something changed.
pub struct TxnWrite<'t, 'a> {
    w: &'t mut MvccWriter<'a>,
    main: i64,
    sub: i64,
}

impl TxnWrite<'_, '_> {
    /// A range that sees this transaction's own earlier writes, as etcd's txn does.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let state = &self.w.state;
        let at = if self.sub > 0 { self.main } else { state.current };
        let plan = range::plan(&state.index, req, at, state.compacted, at)?;
        plan.fetch(|revs| {
            revs.iter().map(|r| self.w.read_value(*r)?.ok_or(Error::Compacted)).collect()
        })
    }

    /// The key's live change as of now (including this transaction's writes).
    pub fn get(&self, key: &[u8]) -> Option<KeyRev> {
        self.w.state.index.latest(key).copied().filter(|c| !c.is_tombstone())
    }

    /// The full key-value of a live change, for `prev_kv` answers.
    pub fn value_of(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.get(key) {
            Some(c) => self.w.read_value(c.rev),
            None => Ok(None),
        }
    }

    /// Live keys in `range` with their current change, in key order.
    pub fn keys_in(&self, range: &KeyRange) -> Vec<(Vec<u8>, KeyRev)> {
        let state = &self.w.state;
        let at = if self.sub > 0 { self.main } else { state.current };
        let (found, _) = state.index.range_at(range, at, 0, false);
        found.into_iter().map(|(k, c)| (k.to_vec(), c)).collect()
    }

    /// Writes `key = value` attached to `lease`; returns the change it replaced (for lease
    /// detachment).
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Option<KeyRev> {
        let prev = self.get(key);
        let rev = Revision::new(self.main, self.sub);
        let (create, version) = match prev {
            Some(p) => (p.create, p.version + 1),
            None => (self.main, 1),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: create,
            mod_revision: self.main,
            version,
            value,
            lease,
        };
        self.record(rev, KeyRev { rev, create, version, lease }, kv);
        prev
    }

    /// Deletes every live key in `range`; returns what was deleted.
    pub fn delete_range(&mut self, range: &KeyRange) -> Vec<(Vec<u8>, KeyRev)> {
        let doomed = self.keys_in(range);
        for (key, _) in &doomed {
            let rev = Revision::new(self.main, self.sub);
            let tombstone =
                KeyValue { key: key.clone(), mod_revision: self.main, ..Default::default() };
            self.record(rev, KeyRev { rev, create: 0, version: 0, lease: 0 }, tombstone);
        }
        doomed
    }

    /// Reads a stored change (overlay first), for `prev_kv` of deletes.
    pub fn read(&self, rev: Revision) -> Result<Option<KeyValue>> {
        self.w.read_value(rev)
    }

    /// Ends the transaction; returns the store's revision after it.
    pub fn finish(self) -> i64 {
        if self.sub > 0 {
            self.w.state.current = self.main;
        }
        self.w.state.current
    }

    /// The revision the store is compacted at; ranges below it fail.
    pub fn compacted_revision(&self) -> i64 {
        self.w.state.compacted
    }

    /// The revision this transaction writes at (valid once it has changed something).
    pub fn revision(&self) -> i64 {
        if self.sub > 0 {
            self.main
        } else {
            self.w.state.current
        }
    }

    fn record(&mut self, rev: Revision, change: KeyRev, kv: KeyValue) {
        let w = &mut *self.w;
        w.state.index.push(&kv.key, change);
        w.batch.put_cf(w.store.storage.cf(Cf::Kv), rev.to_bytes(), kv.encode_to_vec());
        w.overlay.insert(rev, w.events.len());
        w.events.push(event_of(kv));
        self.sub += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    fn value(store: &MvccStore, key: &[u8]) -> Option<(Vec<u8>, i64)> {
        let req = RangeRequest { key: key.to_vec(), ..Default::default() };
        let kvs = store.range(&req).expect("range").kvs;
        kvs.into_iter().next().map(|kv| (kv.value, kv.mod_revision))
    }

    #[test]
    fn rollback_undoes_index_rows_events_and_revision() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let store = MvccStore::open(Storage::open(dir.path()).expect("storage")).expect("mvcc");
        let mut w = store.writer();
        let mut t = w.txn();
        t.put(b"a", b"0".to_vec(), 0);
        assert_eq!(t.finish(), 2);
        let sp = w.savepoint();
        let mut t = w.txn();
        t.put(b"a", b"1".to_vec(), 0);
        t.put(b"b", b"1".to_vec(), 0);
        t.delete_range(&KeyRange::Single(b"a".to_vec()));
        assert_eq!(t.finish(), 3);
        w.rollback(sp).expect("rollback");
        let mut t = w.txn();
        t.put(b"c", b"2".to_vec(), 0);
        assert_eq!(t.finish(), 3, "the rolled-back revision is reused by the next command");
        let events = w.commit().expect("commit");
        let keys: Vec<&[u8]> =
            events.iter().filter_map(|e| e.kv.as_ref()).map(|kv| &kv.key[..]).collect();
        assert_eq!(keys, [&b"a"[..], &b"c"[..]]);
        assert_eq!(value(&store, b"a"), Some((b"0".to_vec(), 2)));
        assert_eq!(value(&store, b"b"), None);
        assert_eq!(store.index_changes(), 2);
        drop(store);
        // The rows on disk agree: a reopened store rebuilds the same index.
        let store = MvccStore::open(Storage::open(dir.path()).expect("storage")).expect("mvcc");
        assert_eq!(store.current_revision(), 3);
        assert_eq!(value(&store, b"a"), Some((b"0".to_vec(), 2)));
        assert_eq!(value(&store, b"b"), None);
        assert_eq!(value(&store, b"c"), Some((b"2".to_vec(), 3)));
    }
}
