//! v2 → v3 migration: moving data kept in etcd's v2 keys API into v3 keys.
//!
//! - `v2_json`: the v2 API's JSON (nodes, events, errors) and how a v2 tree becomes v3
//!   keys: the path is the key, values are kept, directories are dropped, a TTL'd key is
//!   attached to a lease granted with its remaining TTL (unless `--no-ttl`).
//! - `http`: a small HTTP/1.1 client for the v2 API (long-poll watches included).
//! - `writer`: writes converted keys into a running v3 member (oxcd or etcd) over gRPC,
//!   refusing to overwrite existing v3 keys unless asked.
//! - `from_v2`: `oxcd migrate --from-v2-endpoint URL [--follow]`: copies a live etcd v2
//!   tree and then keeps applying its changes (the v2 watch, `waitIndex`) until stopped, so
//!   users cut over with seconds of downtime.
//! - `offline`: `--data-dir`: a stopped member's v2 store converted in place.
//! - `etcd_dir`: `--data-dir` of a stopped etcd member: its v2 store read from etcd's raft
//!   snapshot and WAL, written into a running v3 member.

pub mod etcd_dir;
pub mod from_v2;
pub mod http;
pub mod offline;
pub mod v2_json;
pub mod writer;

use thiserror::Error;

/// What can go wrong migrating.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// The v2 endpoint could not be reached or answered something unusable.
    #[error("v2 endpoint {url}: {message}")]
    Source {
        /// The endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The v3 member could not be reached or refused a write.
    #[error("v3 endpoint {url}: {message}")]
    Target {
        /// The endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// v3 keys exist where v2 keys would be written.
    #[error(
        "refusing to overwrite {count} existing v3 key(s), e.g. {examples} \
         (--overwrite replaces them)"
    )]
    WouldOverwrite {
        /// How many.
        count: usize,
        /// A few of them.
        examples: String,
    },
    /// Bad flags.
    #[error("{0}")]
    Config(String),
}
