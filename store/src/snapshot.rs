//! The snapshot file format: what `etcdctl snapshot save` receives from Maintenance.Snapshot,
//! and what a restore reads back.
//!
//! Layout: magic `OXCDSNP1`, payload length (u64 big-endian), the payload (a bincode
//! `StateDump`), zero padding to a multiple of 512 bytes, then SHA-256 of everything before
//! it. etcdctl decides a file carries etcd's checksum trailer when `size % 512 == 32` (bbolt
//! files are page-aligned); the padding makes our files pass the same test and verify.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"OXCDSNP1";
const ALIGN: usize = 512;
const HASH_LEN: usize = 32;

/// Wraps a state dump into a snapshot file.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + ALIGN + HASH_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(payload);
    let padded = out.len().div_ceil(ALIGN) * ALIGN;
    out.resize(padded, 0);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Checks a snapshot file and returns its state dump.
pub fn decode(file: &[u8]) -> Result<&[u8]> {
    let bad = |why: &str| Error::InvalidArgument(format!("snapshot: {why}"));
    if file.len() < MAGIC.len() + 8 + HASH_LEN || file.len() % ALIGN != HASH_LEN {
        return Err(bad("file is truncated or not an oxcd snapshot"));
    }
    let (body, hash) = file.split_at(file.len() - HASH_LEN);
    if Sha256::digest(body).as_slice() != hash {
        return Err(bad("SHA-256 checksum mismatch"));
    }
    if &body[..MAGIC.len()] != MAGIC {
        return Err(bad("not an oxcd snapshot (bad magic)"));
    }
    let len_bytes: [u8; 8] =
        body[MAGIC.len()..MAGIC.len() + 8].try_into().map_err(|_| bad("truncated header"))?;
    let len = usize::try_from(u64::from_be_bytes(len_bytes)).map_err(|_| bad("bad length"))?;
    let start = MAGIC.len() + 8;
    body.get(start..start.saturating_add(len)).ok_or_else(|| bad("payload is truncated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_etcdctl_trailer_rule() {
        for len in [0usize, 1, 495, 496, 497, 5000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let file = encode(&payload);
            assert_eq!(file.len() % 512, 32, "etcdctl's has-checksum rule");
            assert_eq!(decode(&file).unwrap(), payload.as_slice());
        }
    }

    #[test]
    fn corruption_is_detected() {
        let mut file = encode(b"hello");
        file[20] ^= 1;
        assert!(decode(&file).is_err());
        assert!(decode(b"short").is_err());
    }
}
