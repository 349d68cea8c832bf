//! The etcd v3 gRPC services, one file per service.
//!
//! Handlers validate requests, call the member through its one interface
//! (`member::handle::Member`: they never see its stores, raft or RocksDB), and return
//! `crate::Error`; the only conversion to `tonic::Status` is in `status.rs`.

use tonic::metadata::MetadataMap;

pub use crate::member::handle::Headers;

use crate::error::Result;
use crate::member::handle::{AuthInfo, Member};

/// Who sent a request (etcd's `AuthInfoFromCtx`): the user of its token, or no user. An
/// unknown or expired token fails with `InvalidAuthToken`, whether or not auth is enabled,
/// as in etcd. Every handler that etcd checks calls this first.
pub async fn caller(server: &Member, metadata: &MetadataMap) -> Result<AuthInfo> {
    server.caller(metadata).await
}

pub mod auth;
pub mod cluster;
pub mod election;
pub mod gateway;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod queue;
pub mod status;
pub mod watch;
