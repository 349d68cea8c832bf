//! Backups and restores of oxcd clusters.
//!
//! - [`api`]: the `EtcdSnapshot` resource, `EtcdCluster.spec.backup` and `spec.restore`;
//! - [`store`]: an S3-compatible bucket through the `object_store` crate, with the credentials
//!   of a Secret (the operator) or of the environment (the restore init container);
//! - [`stream`]: a member's Maintenance.Snapshot streamed into an object, its SHA-256 trailer
//!   checked on the way, never held whole in memory; and an object streamed back into a file;
//! - [`schedule`]: when a scheduled snapshot is due and which ones retention prunes (pure);
//! - [`runner`]: the loop the leading operator runs: takes pending snapshots, creates
//!   scheduled ones, prunes old ones;
//! - [`volume`]: snapshots on a PersistentVolumeClaim: the Jobs that write and remove the
//!   files (`oxcd-operator save-snapshot` / `remove-snapshot`) and how their results are read;
//! - [`restore`]: the init container that bootstraps the first member from a snapshot
//!   (`oxcd-operator restore-member`, then `oxcd snapshot restore`).

pub mod api;
pub mod restore;
pub mod runner;
pub mod schedule;
pub mod store;
pub mod stream;
pub mod volume;

/// What can fail in a backup or a restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The member refused or broke the snapshot stream.
    #[error("snapshot from {endpoint}: {source}")]
    Etcd {
        /// The member's client URL.
        endpoint: String,
        /// The client's error.
        #[source]
        source: Box<etcd_client::Error>,
    },
    /// The object store refused a request.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The data does not match its checksum.
    #[error("{0}")]
    Corrupt(String),
    /// Something the request needs is missing or malformed (Secret, URL, …).
    #[error("{0}")]
    Config(String),
    /// A member or the store stopped answering.
    #[error("{0}: timed out")]
    Timeout(String),
    /// A local file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Results of this module.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;
