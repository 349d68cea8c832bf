//! The key interval of a request, decoded once from etcd's `key`/`range_end` convention.

/// Which keys a range, delete, compare or watch covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key (`range_end` empty).
    Single(Vec<u8>),
    /// Every key `>= start` (`range_end` is `"\0"`).
    From(Vec<u8>),
    /// Keys in `[start, end)`; empty when `end <= start`.
    Between(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    /// Decodes etcd's pair: empty end = one key, end `"\0"` = from key, else half-open.
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        if range_end.is_empty() {
            KeyRange::Single(key.to_vec())
        } else if range_end == [0] {
            KeyRange::From(key.to_vec())
        } else {
            KeyRange::Between(key.to_vec(), range_end.to_vec())
        }
    }

    /// Whether `key` falls inside.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_slice() == key,
            KeyRange::From(start) => key >= start.as_slice(),
            KeyRange::Between(start, end) => key >= start.as_slice() && key < end.as_slice(),
        }
    }

    /// The first key of the interval.
    pub fn start(&self) -> &[u8] {
        match self {
            KeyRange::Single(k) | KeyRange::From(k) | KeyRange::Between(k, _) => k,
        }
    }

    /// The exclusive end, if bounded and not a single key.
    pub fn end(&self) -> Option<&[u8]> {
        match self {
            KeyRange::Between(_, end) => Some(end),
            _ => None,
        }
    }

    /// Whether two intervals share a key (used by the txn duplicate-key check).
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        match (self, other) {
            (KeyRange::Single(a), _) => other.contains(a),
            (_, KeyRange::Single(b)) => self.contains(b),
            _ => {
                let (a_start, a_end) = (self.start(), self.end());
                let (b_start, b_end) = (other.start(), other.end());
                let a_before_b_ends = b_end.is_none_or(|e| a_start < e);
                let b_before_a_ends = a_end.is_none_or(|e| b_start < e);
                a_before_b_ends && b_before_a_ends && !self.is_empty() && !other.is_empty()
            }
        }
    }

    /// Whether the interval holds no key at all (`end <= start`).
    pub fn is_empty(&self) -> bool {
        matches!(self, KeyRange::Between(start, end) if end <= start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_etcd_conventions() {
        assert!(KeyRange::new(b"a", b"").contains(b"a"));
        assert!(!KeyRange::new(b"a", b"").contains(b"ab"));
        assert!(KeyRange::new(b"a", b"\0").contains(b"zzz"));
        assert!(!KeyRange::new(b"b", b"\0").contains(b"a"));
        let r = KeyRange::new(b"a", b"c");
        assert!(r.contains(b"a") && r.contains(b"bz") && !r.contains(b"c"));
        assert!(KeyRange::new(b"c", b"a").is_empty());
    }

    #[test]
    fn overlap() {
        let put = KeyRange::new(b"k", b"");
        assert!(KeyRange::new(b"a", b"z").overlaps(&put));
        assert!(!KeyRange::new(b"a", b"c").overlaps(&put));
        assert!(KeyRange::new(b"a", b"c").overlaps(&KeyRange::new(b"b", b"\0")));
        assert!(!KeyRange::new(b"a", b"c").overlaps(&KeyRange::new(b"c", b"d")));
    }
}
