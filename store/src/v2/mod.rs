//! etcd's v2 keys API (`--enable-v2`): a store of its own, replicated through raft and kept
//! apart from the v3 keyspace, as etcd 3.4's v2store.
//!
//! - `error`: v2 error codes, their messages, HTTP statuses and JSON.
//! - `event`: what a client sees: events and nodes (`NodeExtern`), Go's time format.
//! - `path`: Go's `path.Clean`/`path.Split` and the hidden-name rule (`_name`).
//! - `tree`: the node tree and etcd's v2store operations on it, in memory (no I/O, no clock
//!   but the one passed in, so every member applying the same commands gets the same tree).
//! - `store`: `V2Store`: the tree, its index and its last 1000 events, persisted in
//!   `Cf::V2`; the watchers of `wait=true`.
//! - `command`: `V2Command`, what raft replicates, and `V2Outcome`, what applying it gives.
//! - `convert`: the whole v2 store into v3 keys in one MVCC transaction (migration).
//!
//! The HTTP handlers and the leader's SYNC live in `v2_api/` (the edge).

pub mod command;
pub mod convert;
pub mod error;
pub mod event;
pub mod path;
pub mod store;
pub mod tree;

pub use command::{V2Command, V2Outcome};
pub use error::V2Error;
pub use store::V2Store;

/// Where etcd keeps the user's keys inside its v2 store (`StoreKeysPrefix`); responses trim it.
pub const KEYS_PREFIX: &str = "/1";
/// Where etcd keeps cluster information (members, version) inside its v2 store.
pub const CLUSTER_PREFIX: &str = "/0";
