//! A snapshot file: a bbolt database, followed (in files from `snapshot save`) by the SHA-256
//! of everything before it. etcd tells the two kinds apart by size alone: a database is a
//! whole number of pages, so a file whose size is 32 past a multiple of 512 carries a hash.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::bbolt::BoltFile;
use super::SnapshotError;

/// Bytes of the SHA-256 trailer.
pub const HASH_LEN: u64 = 32;

/// An opened snapshot file.
pub struct SnapshotFile {
    /// The database.
    pub db: BoltFile,
    /// Whether the file ends with a hash trailer.
    pub has_hash: bool,
}

/// Whether a file of `size` bytes ends with a hash trailer (etcd's rule).
pub fn has_hash(size: u64) -> bool {
    size % 512 == HASH_LEN
}

/// Opens `path` for `snapshot status`: the database only, the trailer (if any) not checked,
/// as etcdutl does.
pub fn open_for_status(path: &Path) -> Result<SnapshotFile, SnapshotError> {
    let (file, size) = open(path)?;
    let has_hash = has_hash(size);
    let len = if has_hash { size - HASH_LEN } else { size };
    Ok(SnapshotFile { db: BoltFile::open(file, len)?, has_hash })
}

/// Opens `path` for `snapshot restore`: the trailer must match the contents unless
/// `skip_hash_check` (then a file without one, e.g. a copied `member/snap/db`, is accepted).
pub fn open_verified(path: &Path, skip_hash_check: bool) -> Result<SnapshotFile, SnapshotError> {
    let (mut file, size) = open(path)?;
    let has_hash = has_hash(size);
    if !has_hash && !skip_hash_check {
        return Err(SnapshotError::MissingHash);
    }
    let len = if has_hash { size - HASH_LEN } else { size };
    if has_hash && !skip_hash_check {
        let mut hasher = Sha256::new();
        let mut left = len;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            file.read_exact(&mut buf[..n]).map_err(SnapshotError::Io)?;
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        let mut trailer = [0u8; HASH_LEN as usize];
        file.read_exact(&mut trailer).map_err(SnapshotError::Io)?;
        let got: [u8; 32] = hasher.finalize().into();
        if got != trailer {
            return Err(SnapshotError::HashMismatch { expected: hex(&trailer), got: hex(&got) });
        }
    }
    Ok(SnapshotFile { db: BoltFile::open(file, len)?, has_hash })
}

fn open(path: &Path) -> Result<(File, u64), SnapshotError> {
    let with_path = |e: std::io::Error| {
        SnapshotError::Io(std::io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
    };
    let file = File::open(path).map_err(with_path)?;
    let meta = file.metadata().map_err(with_path)?;
    if !meta.is_file() {
        return Err(SnapshotError::Config(format!("{} is not a file", path.display())));
    }
    Ok((file, meta.len()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
