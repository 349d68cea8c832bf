//! The etcd v3 gRPC services, one file per service.
//!
//! Handlers validate requests, call the server or the stores, and return `crate::Error`; the
//! only conversion to `tonic::Status` is in `status.rs`. Nothing here touches RocksDB.

pub use crate::member::headers::Headers;

pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod queue;
pub mod status;
pub mod watch;
