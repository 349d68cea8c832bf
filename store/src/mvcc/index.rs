//! The in-memory key index: for every key, the revisions at which it changed.
//!
//! Values live in RocksDB; the index keeps just enough per change (revision, create revision,
//! version, lease) that a write never has to read the previous value, and a read knows which
//! rows to fetch. It is rebuilt from `Cf::Kv` at start-up, as etcd rebuilds its treeIndex.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::key_range::KeyRange;
use super::revision::Revision;

/// One change of one key. `version == 0` marks a deletion (a tombstone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRev {
    /// Where the change's value is stored.
    pub rev: Revision,
    /// The key's create revision in this generation (0 for a tombstone).
    pub create: i64,
    /// The key's version after the change; 0 means deleted.
    pub version: i64,
    /// The lease the key is attached to after the change (0 for none).
    pub lease: i64,
}

impl KeyRev {
    /// Whether this change deleted the key.
    pub fn is_tombstone(&self) -> bool {
        self.version == 0
    }
}

/// Every key's change history, ordered by key.
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, Vec<KeyRev>>,
    /// Changes held over all keys (a gauge: it must fall back at every compaction).
    changes: usize,
}

impl KeyIndex {
    /// Records a change; changes arrive in revision order.
    pub fn push(&mut self, key: &[u8], change: KeyRev) {
        self.changes += 1;
        match self.keys.get_mut(key) {
            Some(history) => history.push(change),
            None => {
                self.keys.insert(key.to_vec(), vec![change]);
            }
        }
    }

    /// Removes the key's newest change (undoing a failed command's `push`).
    pub fn pop(&mut self, key: &[u8]) -> Option<KeyRev> {
        let history = self.keys.get_mut(key)?;
        let change = history.pop();
        if history.is_empty() {
            self.keys.remove(key);
        }
        if change.is_some() {
            self.changes -= 1;
        }
        change
    }

    /// The key's newest change, tombstone or not.
    pub fn latest(&self, key: &[u8]) -> Option<&KeyRev> {
        self.keys.get(key).and_then(|h| h.last())
    }

    /// The key as visible at main revision `at`: its newest change `<= at`, unless a tombstone.
    pub fn visible_at(&self, key: &[u8], at: i64) -> Option<&KeyRev> {
        self.keys.get(key).and_then(|h| visible(h, at))
    }

    /// Keys visible at `at` inside `range`, in key order, stopping after `limit` (0 = all).
    /// Returns the matches and the total number of visible keys in the range.
    pub fn range_at<'a>(
        &'a self,
        range: &KeyRange,
        at: i64,
        limit: usize,
        count_only: bool,
    ) -> (Vec<(&'a [u8], KeyRev)>, usize) {
        let mut found: Vec<(&[u8], KeyRev)> = Vec::new();
        let mut count = 0usize;
        let mut visit = |key: &'a [u8], history: &'a [KeyRev]| {
            if let Some(change) = visible(history, at) {
                count += 1;
                if !count_only && (limit == 0 || found.len() < limit) {
                    found.push((key, *change));
                }
            }
        };
        match range {
            KeyRange::Single(key) => {
                if let Some((k, h)) = self.keys.get_key_value(key.as_slice()) {
                    visit(k, h);
                }
            }
            KeyRange::From(start) => {
                for (k, h) in self
                    .keys
                    .range::<[u8], _>((Bound::Included(start.as_slice()), Bound::Unbounded))
                {
                    visit(k, h);
                }
            }
            KeyRange::Between(start, end) => {
                if start < end {
                    let bounds =
                        (Bound::Included(start.as_slice()), Bound::Excluded(end.as_slice()));
                    for (k, h) in self.keys.range::<[u8], _>(bounds) {
                        visit(k, h);
                    }
                }
            }
        }
        (found, count)
    }

    /// Drops every change that no read at or after `at` can see, returning their revisions so
    /// the caller deletes the rows. Keeps each key's newest change `<= at` unless it is a
    /// tombstone, as etcd's compaction does.
    pub fn compact(&mut self, at: i64) -> Vec<Revision> {
        let mut dropped = Vec::new();
        self.keys.retain(|_, history| {
            let newer = history.partition_point(|c| c.rev.main <= at);
            if newer == 0 {
                return true;
            }
            let keep_from = match history[newer - 1].is_tombstone() {
                true => newer,
                false => newer - 1,
            };
            dropped.extend(history.drain(..keep_from).map(|c| c.rev));
            if history.capacity() > 2 * history.len() {
                history.shrink_to_fit();
            }
            !history.is_empty()
        });
        self.changes -= dropped.len();
        dropped
    }

    /// Number of keys with any history (live or not yet compacted).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Number of changes held over all keys.
    pub fn changes(&self) -> usize {
        self.changes
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn visible(history: &[KeyRev], at: i64) -> Option<&KeyRev> {
    let upto = history.partition_point(|c| c.rev.main <= at);
    match upto {
        0 => None,
        n => Some(&history[n - 1]).filter(|c| !c.is_tombstone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(main: i64, create: i64, version: i64) -> KeyRev {
        KeyRev { rev: Revision::new(main, 0), create, version, lease: 0 }
    }

    fn del(main: i64) -> KeyRev {
        KeyRev { rev: Revision::new(main, 0), create: 0, version: 0, lease: 0 }
    }

    #[test]
    fn visibility_follows_history() {
        let mut idx = KeyIndex::default();
        idx.push(b"a", put(2, 2, 1));
        idx.push(b"a", put(3, 2, 2));
        idx.push(b"a", del(4));
        idx.push(b"a", put(5, 5, 1));
        assert!(idx.visible_at(b"a", 1).is_none());
        assert_eq!(idx.visible_at(b"a", 3).map(|c| c.version), Some(2));
        assert!(idx.visible_at(b"a", 4).is_none());
        assert_eq!(idx.visible_at(b"a", 9).map(|c| c.create), Some(5));
    }

    #[test]
    fn range_counts_and_limits() {
        let mut idx = KeyIndex::default();
        for (i, k) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            idx.push(*k, put(i as i64 + 2, i as i64 + 2, 1));
        }
        idx.push(b"b", del(6));
        let (found, count) = idx.range_at(&KeyRange::new(b"a", b"\0"), 6, 2, false);
        assert_eq!(count, 3);
        assert_eq!(
            found.iter().map(|(k, _)| k.to_vec()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"c".to_vec()]
        );
        let (found, count) = idx.range_at(&KeyRange::new(b"a", b"c"), 5, 0, true);
        assert_eq!((found.len(), count), (0, 2));
    }

    #[test]
    fn compaction_keeps_what_reads_can_see() {
        let mut idx = KeyIndex::default();
        idx.push(b"a", put(2, 2, 1));
        idx.push(b"a", put(3, 2, 2));
        idx.push(b"b", put(4, 4, 1));
        idx.push(b"b", del(5));
        idx.push(b"a", put(6, 2, 3));
        let mut dropped = idx.compact(5);
        dropped.sort();
        assert_eq!(dropped, vec![Revision::new(2, 0), Revision::new(4, 0), Revision::new(5, 0)]);
        assert_eq!(idx.visible_at(b"a", 5).map(|c| c.version), Some(2));
        assert!(idx.latest(b"b").is_none());
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.changes(), 2);
    }
}
