//! etcd snapshot files in and out of oxcd: `oxcd snapshot save|status|restore`, with
//! etcdutl's flags and outputs, for files written by real etcd (3.4, 3.5, 3.6) and by oxcd.
//!
//! - `bbolt`: a reader of bbolt files (etcd's backend format), page by page, bounds-checked.
//! - `file`: a snapshot file: its SHA-256 trailer and the bbolt database before it.
//! - `status`: `snapshot status` (hash, revision, keys, size) exactly as etcdutl computes it.
//! - `restore`: a snapshot → a fresh oxcd data dir, built aside and renamed into place.
//! - `save`: `snapshot save`: Maintenance.Snapshot from one endpoint into a file.
//! - `crc32c`: the Castagnoli CRC etcdutl's status hash uses.
//!
//! The writer of snapshot files (what Maintenance.Snapshot streams) is `crate::snapshot_file::export`
//! over `crate::snapshot_file::bbolt_writer`; this module only reads them, or asks a server for one.

pub mod bbolt;
pub mod bbolt_writer;
pub mod crc32c;
pub mod export;
pub mod file;
pub mod restore;
pub mod save;
pub mod status;

use thiserror::Error;

/// What can go wrong reading a snapshot file or restoring one; the text is for the operator
/// running `oxcd snapshot`, in etcdutl's words where etcdutl has some.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(std::io::Error),
    /// The file is not a bbolt database at all.
    #[error("not an etcd snapshot (bbolt) file: {0}")]
    NotBolt(String),
    /// The file ends before the database it describes.
    #[error("snapshot file is truncated: {0}")]
    Truncated(String),
    /// The database's structure or contents are broken.
    #[error("snapshot file is corrupt: {0}")]
    Corrupt(String),
    /// The SHA-256 trailer does not match the contents.
    #[error(
        "snapshot file is damaged: expected sha256 {expected}, got {got} \
         (--skip-hash-check skips this check)"
    )]
    HashMismatch {
        /// The trailer's hash, hex.
        expected: String,
        /// The contents' hash, hex.
        got: String,
    },
    /// A file without the trailer, which only a copied `member/snap/db` lacks.
    #[error("snapshot missing hash but --skip-hash-check=false")]
    MissingHash,
    /// The restore's flags or target are not usable.
    #[error("{0}")]
    Config(String),
    /// Writing the restored member's database failed.
    #[error("writing the restored data: {0}")]
    Storage(#[from] crate::Error),
}

impl From<rocksdb::Error> for SnapshotError {
    fn from(e: rocksdb::Error) -> SnapshotError {
        SnapshotError::Storage(e.into())
    }
}
