// openraft's `StorageError` is part of its trait signatures; boxing it would only add
// conversions at every call.
#![allow(clippy::result_large_err)]

//! Raft: openraft's type configuration and the three parts it needs from us, kept apart as
//! openraft's examples do: the log store, the state machine, and the peer network; plus
//! `transfer`, the file format of raft snapshots (state transfer to a lagging member).

pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod transfer;

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::pb::oxcdpb::{InternalRequest, InternalResponse};

openraft::declare_raft_types!(
    /// oxcd's raft types: commands and results are our protobuf messages, nodes are
    /// addressed by their advertised peer URL.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

/// The raft handle of a member.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<u64>;
/// Raft's storage error.
pub type StorageError = openraft::StorageError<u64>;
/// The membership as stored with the applied state.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;

/// A replicated command. Serialized as its protobuf encoding, so the raft log and the peer
/// wire carry one stable, versionable format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request(pub InternalRequest);

/// The result of applying a command, handed back to whoever proposed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response(pub InternalResponse);

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0.request.as_ref().map(std::mem::discriminant))
    }
}

macro_rules! protobuf_serde {
    ($wrapper:ident, $inner:ty) => {
        impl Serialize for $wrapper {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0.encode_to_vec())
            }
        }

        impl<'de> Deserialize<'de> for $wrapper {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes = serde_bytes::ByteBuf::deserialize(d)?;
                <$inner>::decode(bytes.as_slice()).map($wrapper).map_err(serde::de::Error::custom)
            }
        }
    };
}

protobuf_serde!(Request, InternalRequest);
protobuf_serde!(Response, InternalResponse);

/// Encodes a raft message for the log or the peer wire.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    bincode::serialize(value)
}

/// Decodes what `encode` wrote.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}

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
