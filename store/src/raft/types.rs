//! oxcd's raft types: what the log holds, what applying returns, and how both are encoded.
//! Plain definitions, so the layers below raft (apply) can name them without using raft.

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
