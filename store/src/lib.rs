//! oxcd: an etcd-compatible, raft-replicated key-value store.
//!
//! # Layout — layers, top to bottom (ARCHITECTURE.md at the repository root has the whole
//! picture; `tests/layers.rs` checks that no module uses one above it)
//! - edge: `serve/` (listeners, shutdown order, connection cap, HTTP/2 `:authority` shim, the
//!   peer gRPC service), `api/` (one file per etcd gRPC service; `api/status.rs` is the only
//!   `Error` → `tonic::Status` conversion), `http` (`/health`, `/version`, `/metrics`),
//!   `pprof` (`/debug/pprof/` CPU profiles with `--enable-pprof`), `tools/` (`oxcd snapshot
//!   ...`, `oxcd migrate ...`).
//! - `member/`: `server::EtcdServer`, the one interface the edge talks to (propose,
//!   linearizable reads, reads of the applied stores, watch hub, status), with group commit
//!   (`propose_batcher`), shared ReadIndex rounds (`read_index`), membership changes and the
//!   leader hand-over, the auto-compactor, and the response header stamp.
//! - `snapshot_file/` (etcd's bbolt snapshot files: export, status, restore, save) and
//!   `migrate/` (v2 → v3): beside the request path.
//! - `v2_api/`: etcd's v2 HTTP API (`--enable-v2`), the online v2 → v3 migration endpoint
//!   and the leader's TTL expiry (SYNC); `v2/`: the v2 store itself, applied state beside
//!   the v3 keys.
//! - `raft/`: openraft's types (`types`), RocksDB log store, state machine, peer network, raft
//!   state transfer between members (`transfer`).
//! - `apply/`: committed commands → state, deterministically and atomically.
//! - applied state: `auth/`, `lease/`, `cluster/` (member attributes, alarms), `watch/` (the
//!   watch hub, fed by apply), `mvcc/` (revisions, key index, ranges, writes, compaction).
//! - `storage/`: the RocksDB database, its column families, heap trimming (`memory`).
//! - foundation, used by all: `error`, `pb`, `config`, `metrics`, `version`, `logging`
//!   (etcd's `--logger zap` JSON lines, `--log-level`, `--log-outputs`).

pub mod api;
pub mod apply;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod lease;
pub mod logging;
pub mod member;
pub mod metrics;
pub mod migrate;
pub mod mvcc;
pub mod pb;
pub mod pprof;
pub mod raft;
pub mod serve;
pub mod snapshot_file;
pub mod storage;
pub mod tls;
pub mod tools;
pub mod v2;
pub mod v2_api;
pub mod version;
pub mod watch;

pub use error::{Error, Result};

// Where these modules were before they were grouped into folders, kept for work branched
// before the move; new code names the folder (`crate::member::server`).
#[doc(hidden)]
pub use member::{compactor, membership, propose_batcher, read_index, server};
