//! MVCC: revisions, the key index, ranges, writes, history and compaction, as etcd's mvcc.
//!
//! Owns `Cf::Kv` and the revision entries of `Cf::Meta`. Knows protobuf message types (they
//! are the data model) but never tonic, raft or leases: attaching keys to leases is apply's job.

pub mod index;
pub mod key_range;
mod range;
pub mod revision;
mod store;
mod writer;

pub use key_range::KeyRange;
pub use revision::Revision;
pub use store::MvccStore;
pub use writer::{MvccWriter, Savepoint, TxnWrite};
