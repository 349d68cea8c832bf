//! What raft replicates for the v2 API (etcd's v2 `Request` methods that go through raft)
//! and what applying it returns.

use serde::{Deserialize, Serialize};

use super::error::V2Error;
use super::event::Event;
use crate::pb::oxcdpb;
use crate::v2::convert::{ConvertOptions, Converted, WouldOverwrite};

/// A replicated v2 command. Paths carry the store prefix (`/1/...`); expirations are unix
/// nanoseconds fixed by the member that took the request (0: none), as etcd fixes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum V2Command {
    /// PUT: set, create (`prevExist=false`), update (`prevExist=true`) or compare-and-swap.
    Put {
        /// The path.
        path: String,
        /// The value.
        value: String,
        /// A directory.
        dir: bool,
        /// `prevValue` (empty: none).
        prev_value: String,
        /// `prevIndex` (0: none).
        prev_index: u64,
        /// `prevExist` when given.
        prev_exist: Option<bool>,
        /// `refresh=true`: only the TTL changes, watchers are not told.
        refresh: bool,
        /// Expiry (unix ns, 0: permanent).
        expiration: i64,
    },
    /// POST: an in-order key (or directory) under `path`.
    Post {
        /// The directory.
        path: String,
        /// The value.
        value: String,
        /// A directory.
        dir: bool,
        /// Expiry (unix ns, 0: permanent).
        expiration: i64,
    },
    /// DELETE, or compare-and-delete with `prev_value`/`prev_index`.
    Delete {
        /// The path.
        path: String,
        /// `dir=true`.
        dir: bool,
        /// `recursive=true`.
        recursive: bool,
        /// `prevValue` (empty: none).
        prev_value: String,
        /// `prevIndex` (0: none).
        prev_index: u64,
    },
    /// GET with `quorum=true`: a read ordered with the writes.
    QGet {
        /// The path.
        path: String,
        /// `recursive=true`.
        recursive: bool,
        /// `sorted=true`.
        sorted: bool,
    },
    /// The leader's clock: nodes that expired by `time` (unix ns) are removed.
    Sync {
        /// The leader's time.
        time: i64,
    },
    /// Online v2 → v3 migration: the whole v2 store becomes v3 keys at one revision, as of
    /// the proposer's `time` (unix ns, for remaining TTLs), the same on every member.
    MigrateToV3 {
        /// The proposer's time.
        time: i64,
        /// `--no-ttl`, `--overwrite`.
        options: ConvertOptions,
    },
}

impl V2Command {
    /// The HTTP method etcd's v2 applier names the command by (`etcd_server_apply_duration_seconds`).
    pub fn method(&self) -> &'static str {
        match self {
            V2Command::Put { .. } => "PUT",
            V2Command::Post { .. } => "POST",
            V2Command::Delete { .. } => "DELETE",
            V2Command::QGet { .. } => "QGET",
            V2Command::Sync { .. } => "SYNC",
            V2Command::MigrateToV3 { .. } => "MIGRATE",
        }
    }
}

/// The result of applying a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum V2Outcome {
    /// A change or a read, with the store index after it (`X-Etcd-Index`).
    Event {
        /// The event (paths with the store prefix).
        event: Box<Event>,
        /// The store's index.
        etcd_index: u64,
    },
    /// The command failed.
    Error(V2Error),
    /// Nothing to answer (a SYNC).
    Nothing,
    /// The v2 store was converted into v3 keys.
    Migrated(Converted),
    /// The conversion was refused (v3 keys would be overwritten); nothing changed.
    Refused(WouldOverwrite),
}

impl V2Command {
    /// The raft command carrying it.
    pub fn encode(&self) -> oxcdpb::V2Command {
        oxcdpb::V2Command { json: serde_json::to_vec(self).unwrap_or_default() }
    }

    /// The command a raft entry carries.
    pub fn decode(cmd: &oxcdpb::V2Command) -> Result<V2Command, serde_json::Error> {
        serde_json::from_slice(&cmd.json)
    }
}

impl V2Outcome {
    /// The raft response carrying it.
    pub fn encode(&self) -> oxcdpb::V2Outcome {
        oxcdpb::V2Outcome { json: serde_json::to_vec(self).unwrap_or_default() }
    }

    /// The outcome a raft response carries.
    pub fn decode(out: &oxcdpb::V2Outcome) -> Result<V2Outcome, serde_json::Error> {
        serde_json::from_slice(&out.json)
    }
}
