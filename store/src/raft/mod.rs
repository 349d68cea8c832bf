// openraft's `StorageError` is part of its trait signatures; boxing it would only add
// conversions at every call.
#![allow(clippy::result_large_err)]

//! Raft: openraft's type configuration and the three parts it needs from us, kept apart as
//! openraft's examples do: the log store, the state machine, and the peer network; plus
//! `transfer`, the file format of raft snapshots (state transfer to a lagging member), and
//! `pre_vote`, the elections openraft 0.9 would start on its own, asked about first.

pub mod log_store;
pub mod network;
pub mod peer_stats;
pub mod pre_vote;
pub mod state_machine;
pub mod transfer;
pub mod types;

pub use types::*;

#[cfg(test)]
mod suite_tests {
    //! openraft's own storage test suite, run against our RocksDB log store and state machine.
    use std::sync::Arc;

    use openraft::testing::{StoreBuilder, Suite};

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::{StorageError, TypeConfig};
    use crate::apply::Applier;
    use crate::auth::AuthStore;
    use crate::cluster::ClusterState;
    use crate::lease::Lessor;
    use crate::mvcc::MvccStore;
    use crate::storage::Storage;
    use crate::watch::WatchHub;

    struct Builder;

    fn io_err(e: impl std::fmt::Display) -> StorageError {
        openraft::StorageIOError::new(
            openraft::ErrorSubject::Store,
            openraft::ErrorVerb::Write,
            openraft::AnyError::error(e.to_string()),
        )
        .into()
    }

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::TempDir::new().map_err(io_err)?;
            let storage = Storage::open(dir.path()).map_err(io_err)?;
            let mvcc = Arc::new(MvccStore::open(storage.clone()).map_err(io_err)?);
            let lessor = Arc::new(Lessor::open(storage.clone(), 1, Vec::new()).map_err(io_err)?);
            let cluster = Arc::new(ClusterState::open(storage.clone()).map_err(io_err)?);
            let hub = WatchHub::new(mvcc.clone());
            let auth = Arc::new(AuthStore::open(storage.clone()).map_err(io_err)?);
            let applier = Arc::new(
                Applier::open(
                    storage.clone(),
                    mvcc.clone(),
                    lessor.clone(),
                    cluster.clone(),
                    hub,
                    auth,
                )
                .map_err(io_err)?,
            );
            let sm = StateMachine::new(storage.clone(), applier, mvcc, lessor, cluster);
            Ok((dir, LogStore::new(storage), sm))
        }
    }

    #[test]
    fn log_store_and_state_machine_pass_openraft_suite() {
        Suite::test_all(Builder).expect("openraft storage suite");
    }
}
