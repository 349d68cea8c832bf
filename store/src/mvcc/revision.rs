//! The revision: etcd's logical clock, and the key of every row in `Cf::Kv`.
//!
//! Encoded as 16 bytes, `main` then `sub`, each big-endian, so RocksDB's byte order is revision
//! order and a revision range is a key range. `main` grows by one per write transaction; `sub`
//! numbers the changes inside one transaction.

/// One change's position in the store's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The transaction's revision, as clients see it (`mod_revision`).
    pub main: i64,
    /// The change's index inside its transaction.
    pub sub: i64,
}

/// Length of an encoded revision.
pub const REVISION_LEN: usize = 16;

impl Revision {
    /// A revision from its parts.
    pub fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }

    /// The 16-byte big-endian form used as a `Cf::Kv` key.
    pub fn to_bytes(self) -> [u8; REVISION_LEN] {
        let mut out = [0u8; REVISION_LEN];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    /// Decodes a `Cf::Kv` key; `None` for anything that is not 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Revision> {
        if bytes.len() != REVISION_LEN {
            return None;
        }
        let main = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(bytes[8..].try_into().ok()?);
        Some(Revision { main, sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_byte_order_matches_revision_order() {
        let revs = [
            Revision::new(0, 0),
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(1, 255),
            Revision::new(2, 0),
            Revision::new(256, 3),
            Revision::new(i64::MAX, 0),
        ];
        for pair in revs.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
        }
        for r in revs {
            assert_eq!(Revision::from_bytes(&r.to_bytes()), Some(r));
        }
        assert_eq!(Revision::from_bytes(b"short"), None);
    }
}
