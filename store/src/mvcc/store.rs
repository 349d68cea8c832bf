//! The MVCC store: the published state that reads see, and the start-up rebuild of the index.

use std::sync::{RwLock, RwLockReadGuard};

use prost::Message;

use super::index::{KeyIndex, KeyRev};
use super::key_range::KeyRange;
use super::range;
use super::revision::{Revision, REVISION_LEN};
use super::writer::MvccWriter;
use crate::error::{Error, Result};
use crate::pb::etcdserverpb::{RangeRequest, RangeResponse};
use crate::pb::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::schema::meta_keys;
use crate::storage::{Cf, Storage};

/// What reads see: the index and the revisions, changed only by apply under the write lock.
#[derive(Default)]
pub(crate) struct MvccState {
    pub(crate) index: KeyIndex,
    /// The newest revision; everything up to it is in RocksDB.
    pub(crate) current: i64,
    /// Reads below this revision fail with `Error::Compacted`.
    pub(crate) compacted: i64,
}

/// etcd's key-value store with history. A cheap handle; clones share state.
pub struct MvccStore {
    pub(crate) storage: Storage,
    pub(crate) state: RwLock<MvccState>,
}

impl MvccStore {
    /// Opens the store over `storage`, rebuilding the index from every stored revision.
    pub fn open(storage: Storage) -> Result<MvccStore> {
        let state = load_state(&storage)?;
        Ok(MvccStore { storage, state: RwLock::new(state) })
    }

    /// Changes the in-memory index holds (for the memory gauges).
    pub fn index_changes(&self) -> usize {
        self.read_state().index.changes()
    }

    /// Rebuilds the in-memory state from the database (after a snapshot was installed).
    pub fn reload(&self) -> Result<()> {
        let fresh = load_state(&self.storage)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The newest revision.
    pub fn current_revision(&self) -> i64 {
        self.read_state().current
    }

    /// The revision the store was compacted at (0 if never).
    pub fn compacted_revision(&self) -> i64 {
        self.read_state().compacted
    }

    /// Serves a range outside any write: picks keys under the lock, reads values from a
    /// RocksDB snapshot taken under the same lock, after releasing it.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let started = std::time::Instant::now();
        let result = self.range_uncounted(req);
        let success = if result.is_ok() { "true" } else { "false" };
        let took = started.elapsed().as_secs_f64();
        crate::metrics::RANGE_DURATION.with_label_values(&[success]).observe(took);
        result
    }

    /// `range` without its latency metric.
    fn range_uncounted(&self, req: &RangeRequest) -> Result<RangeResponse> {
        crate::metrics::MVCC_RANGE.inc();
        crate::metrics::DEBUGGING_RANGE.inc();
        let (plan, snapshot) = {
            let state = self.read_state();
            let plan =
                range::plan(&state.index, req, state.current, state.compacted, state.current)?;
            (plan, self.storage.db().snapshot())
        };
        plan.fetch(|revs| {
            let cf = self.storage.cf(Cf::Kv);
            let keys: Vec<_> = revs.iter().map(|r| (cf, r.to_bytes())).collect();
            snapshot
                .multi_get_cf(keys)
                .into_iter()
                .map(|v| match v? {
                    Some(bytes) => decode_kv(&bytes),
                    None => Err(Error::Compacted),
                })
                .collect()
        })
    }

    /// The key's value as of revision `at`, if it existed then (for a watcher's `prev_kv`).
    pub fn kv_at(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>> {
        let rev = {
            let state = self.read_state();
            match state.index.visible_at(key, at) {
                Some(c) => c.rev,
                None => return Ok(None),
            }
        };
        self.read_rev(rev)
    }

    /// Every change in `range` with main revision in `[from, to]`, in revision order: the
    /// history a watcher replays. Fails with `Compacted` if `from` is already compacted.
    pub fn events_between(&self, range: &KeyRange, from: i64, to: i64) -> Result<Vec<Event>> {
        {
            let state = self.read_state();
            if from < state.compacted {
                return Err(Error::Compacted);
            }
        }
        let mut events = Vec::new();
        if from > to {
            return Ok(events);
        }
        let cf = self.storage.cf(Cf::Kv);
        let start = Revision::new(from, 0).to_bytes();
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(Revision::new(to.saturating_add(1), 0).to_bytes().to_vec());
        let iter = self.storage.db().iterator_cf_opt(
            cf,
            opts,
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if key.len() != REVISION_LEN {
                continue;
            }
            let kv = decode_kv(&value)?;
            if range.contains(&kv.key) {
                events.push(event_of(kv));
            }
        }
        Ok(events)
    }

    /// A CRC-32 over every stored revision up to `rev` (0 = all), as etcd's HashKV: equal on
    /// members that applied the same history. Returns (hash, compacted revision, current).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        let (compacted, current, snapshot) = {
            let state = self.read_state();
            (state.compacted, state.current, self.storage.db().snapshot())
        };
        if rev > current {
            return Err(Error::FutureRev);
        }
        if rev != 0 && rev < compacted {
            return Err(Error::Compacted);
        }
        let upto = if rev == 0 { current } else { rev };
        let mut hasher = crc32fast::Hasher::new();
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(Revision::new(upto.saturating_add(1), 0).to_bytes().to_vec());
        for item in
            snapshot.iterator_cf_opt(self.storage.cf(Cf::Kv), opts, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item?;
            hasher.update(&key);
            hasher.update(&value);
        }
        Ok((hasher.finalize(), compacted, current))
    }

    /// Takes the write lock for one batch of applied entries.
    pub fn writer(&self) -> MvccWriter<'_> {
        MvccWriter::new(self)
    }

    /// Every live key with its lease, for rebuilding lease attachments at start-up.
    pub fn leased_keys(&self) -> Vec<(Vec<u8>, i64)> {
        let state = self.read_state();
        let (found, _) = state.index.range_at(&KeyRange::From(Vec::new()), state.current, 0, false);
        found
            .into_iter()
            .filter(|(_, c)| c.lease != 0)
            .map(|(k, c)| (k.to_vec(), c.lease))
            .collect()
    }

    /// Number of live keys at the current revision.
    pub fn key_count(&self) -> usize {
        let state = self.read_state();
        state.index.range_at(&KeyRange::From(Vec::new()), state.current, 0, true).1
    }

    pub(crate) fn read_rev(&self, rev: Revision) -> Result<Option<KeyValue>> {
        match self.storage.db().get_cf(self.storage.cf(Cf::Kv), rev.to_bytes())? {
            Some(bytes) => decode_kv(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn read_state(&self) -> RwLockReadGuard<'_, MvccState> {
        // A poisoned lock means apply panicked mid-batch; the state is still the last
        // published one, which is what readers must see.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn load_state(storage: &Storage) -> Result<MvccState> {
    let mut state = MvccState::default();
    let db = storage.db();
    for item in db.iterator_cf(storage.cf(Cf::Kv), rocksdb::IteratorMode::Start) {
        let (key, value) = item?;
        let rev = Revision::from_bytes(&key)
            .ok_or_else(|| Error::Internal(format!("bad revision key of {} bytes", key.len())))?;
        let kv = decode_kv(&value)?;
        state.index.push(
            &kv.key,
            KeyRev { rev, create: kv.create_revision, version: kv.version, lease: kv.lease },
        );
        state.current = state.current.max(rev.main);
    }
    let meta = storage.cf(Cf::Meta);
    if let Some(v) = db.get_cf(meta, meta_keys::REVISION)? {
        state.current = state.current.max(decode_i64(&v)?);
    }
    if let Some(v) = db.get_cf(meta, meta_keys::COMPACTED)? {
        state.compacted = decode_i64(&v)?;
    }
    // etcd starts at revision 1: an empty store has already "written" revision 1.
    state.current = state.current.max(1);
    Ok(state)
}

/// Turns a stored row into the watch event it records.
pub(crate) fn event_of(kv: KeyValue) -> Event {
    let kind = if kv.version == 0 { EventType::Delete } else { EventType::Put };
    Event { r#type: kind as i32, kv: Some(kv), prev_kv: None }
}

pub(crate) fn decode_kv(bytes: &[u8]) -> Result<KeyValue> {
    KeyValue::decode(bytes).map_err(|e| Error::internal("decode stored KeyValue", e))
}

pub(crate) fn decode_i64(bytes: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| Error::Internal("bad i64 in meta".into()))?;
    Ok(i64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    //! Ranges against a real RocksDB in a temporary directory, with etcd's semantics.
    use super::*;
    use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};

    /// Keys a..e put at revisions 2..6 ("va".."ve"), then a again at 7 ("again").
    fn store() -> (tempfile::TempDir, MvccStore) {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let store = MvccStore::open(Storage::open(dir.path()).expect("storage")).expect("mvcc");
        let mut w = store.writer();
        for k in ["a", "b", "c", "d", "e"] {
            let mut t = w.txn();
            t.put(k.as_bytes(), format!("v{k}").into_bytes(), 0);
            t.finish();
        }
        let mut t = w.txn();
        t.put(b"a", b"again".to_vec(), 0);
        assert_eq!(t.finish(), 7);
        w.commit().expect("commit");
        (dir, store)
    }

    fn all() -> RangeRequest {
        RangeRequest { key: b"a".to_vec(), range_end: b"z".to_vec(), ..Default::default() }
    }

    fn keys(resp: &RangeResponse) -> Vec<String> {
        resp.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
    }

    #[test]
    fn a_range_counts_every_key_and_returns_up_to_its_limit() {
        let (_dir, s) = store();
        let resp = s.range(&RangeRequest { limit: 2, ..all() }).expect("range");
        assert_eq!((keys(&resp), resp.count, resp.more), (vec!["a".into(), "b".into()], 5, true));
        assert_eq!(resp.header.expect("header").revision, 7);
        let resp = s.range(&RangeRequest { limit: 5, ..all() }).expect("range");
        assert_eq!((resp.kvs.len(), resp.more), (5, false));
        let resp = s.range(&RangeRequest { count_only: true, ..all() }).expect("range");
        assert_eq!((resp.kvs.len(), resp.count), (0, 5));
        let resp = s.range(&RangeRequest { keys_only: true, ..all() }).expect("range");
        assert_eq!(keys(&resp).len(), 5);
        assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()), "keys only");
        let a = &s.range(&RangeRequest { key: b"a".to_vec(), ..Default::default() }).unwrap().kvs;
        assert_eq!(
            (a[0].value.as_slice(), a[0].create_revision, a[0].mod_revision, a[0].version),
            (&b"again"[..], 2, 7, 2)
        );
    }

    #[test]
    fn a_range_reads_history_and_refuses_future_and_compacted_revisions() {
        let (_dir, s) = store();
        let resp = s.range(&RangeRequest { revision: 3, ..all() }).expect("range at 3");
        assert_eq!(keys(&resp), vec!["a".to_string(), "b".into()]);
        assert_eq!(resp.kvs[0].value, b"va", "a as it was at revision 3");
        assert_eq!(s.range(&RangeRequest { revision: 8, ..all() }), Err(Error::FutureRev));
        let mut w = s.writer();
        w.compact(5).expect("compact");
        w.commit().expect("commit");
        assert_eq!(s.range(&RangeRequest { revision: 4, ..all() }), Err(Error::Compacted));
        let resp = s.range(&RangeRequest { revision: 5, ..all() }).expect("range at 5");
        assert_eq!(keys(&resp), vec!["a".to_string(), "b".into(), "c".into(), "d".into()]);
        assert_eq!(resp.kvs[0].value, b"va", "the compaction kept a's value as of 5");
    }

    #[test]
    fn a_range_sorts_and_filters_as_etcd() {
        let (_dir, s) = store();
        let desc = RangeRequest { sort_order: SortOrder::Descend as i32, ..all() };
        assert_eq!(keys(&s.range(&desc).expect("range")), ["e", "d", "c", "b", "a"]);
        let by_mod = RangeRequest {
            sort_order: SortOrder::Ascend as i32,
            sort_target: SortTarget::Mod as i32,
            limit: 4,
            ..all()
        };
        let resp = s.range(&by_mod).expect("range");
        assert_eq!(
            (keys(&resp), resp.more),
            (vec!["b".into(), "c".into(), "d".into(), "e".into()], true)
        );
        let recent = RangeRequest { min_mod_revision: 4, ..all() };
        assert_eq!(keys(&s.range(&recent).expect("range")), ["a", "c", "d", "e"]);
        let old = RangeRequest { max_create_revision: 3, ..all() };
        assert_eq!(keys(&s.range(&old).expect("range")), ["a", "b"]);
    }

    #[test]
    fn a_txn_reads_its_own_writes_and_a_delete_keeps_history() {
        let (_dir, s) = store();
        let mut w = s.writer();
        let mut t = w.txn();
        t.put(b"x", b"new".to_vec(), 0);
        let deleted = t.delete_range(&KeyRange::new(b"b", b"d"));
        assert_eq!(deleted.len(), 2, "b and c");
        let seen = t.range(&all()).expect("range in txn");
        assert_eq!(keys(&seen), ["a", "d", "e", "x"]);
        assert_eq!(seen.kvs[3].mod_revision, 8, "the txn's own revision");
        assert_eq!(t.finish(), 8, "one revision for the whole txn");
        let events = w.commit().expect("commit");
        assert_eq!(events.len(), 3, "one put, two deletes");
        assert_eq!(keys(&s.range(&all()).expect("range")), ["a", "d", "e", "x"]);
        let before = s.range(&RangeRequest { revision: 7, ..all() }).expect("range at 7");
        assert_eq!(keys(&before), ["a", "b", "c", "d", "e"]);
    }
}
