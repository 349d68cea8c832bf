//! oxcd: an etcd-compatible, raft-replicated key-value store.
//!
//! # Layout — the path of a request
//! - `api/`: one file per etcd gRPC service; validates, calls the server, maps errors
//!   (`api/status.rs` is the only `Error` → `tonic::Status` conversion).
//! - `server`: the member; `propose` writes through raft, `linearizable_read` waits for a
//!   read index. Owns the background roles (lease expiry, attribute publishing, compactor).
//! - `propose_batcher`: group commit; concurrent proposals share one raft entry.
//! - `raft/`: openraft's type config, RocksDB log store, state machine, peer network/service.
//! - `apply`: the deterministic applier: committed entries → one RocksDB batch each.
//! - `mvcc/`: revisions, the key index, ranges, writes, history, compaction.
//! - `lease/`, `cluster`: leases; member attributes and alarms.
//! - `auth/`: users, roles, permissions and simple tokens; the permission checks handlers call.
//! - `watch/`: the watch hub (synced/unsynced watchers, catch-up from history).
//! - `storage/`: the RocksDB database and its column families.
//! - `snapshot`, `bolt`: `etcdctl snapshot save` files: the state in etcd's bbolt layout.
//! - `snapshot_file`: reading etcd snapshot files: status, restore into a data dir, save.
//! - `migrate`: v2 → v3 migration (from a live etcd v2 cluster).
//! - `tools`: `oxcd snapshot ...`, `oxcd migrate ...`: command-line tools run instead of a member.
//! - `http`, `metrics`, `config`, `serve`: HTTP endpoints, prometheus, etcd flags, listeners;
//!   `conn_limit` caps open client connections.
//! - `memory`: handing freed heap back to the OS (RocksDB's compactions churn glibc's arenas).

pub mod api;
pub mod apply;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod lease;
pub mod member;
pub mod metrics;
pub mod migrate;
pub mod mvcc;
pub mod pb;
pub mod raft;
pub mod serve;
pub mod snapshot_file;
pub mod storage;
pub mod tools;
pub mod watch;

pub use error::{Error, Result};

// Where these modules were before they were grouped into folders, kept for work branched
// before the move; new code names the folder (`crate::member::server`).
#[doc(hidden)]
pub use member::{compactor, membership, propose_batcher, read_index, server};
