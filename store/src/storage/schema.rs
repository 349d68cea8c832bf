//! Every column family of the database, and the fixed keys of the metadata families.

/// The column families; `Storage::open` creates exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    /// Raft log entries: big-endian log index → bincode `Entry`.
    RaftLog,
    /// Raft metadata: vote, committed and last purged log ids (keys in `raft_meta_keys`).
    RaftMeta,
    /// MVCC revisions: `mvcc::Revision` (16 bytes, big-endian) → protobuf `mvccpb.KeyValue`.
    Kv,
    /// Applied-state metadata: applied log id, membership, revisions (keys in `meta_keys`).
    Meta,
    /// Leases: big-endian lease id → bincode `lease::LeaseRecord`.
    Lease,
    /// Members' etcd attributes: big-endian member id → bincode `cluster::MemberRecord`.
    Members,
    /// Auth users, roles, the enabled flag and the auth revision (keys in `auth_keys`).
    Auth,
    /// The v2 keys API's store (etcd's v2store), apart from the v3 keys: nodes, index and
    /// event history (keys in `v2_keys`).
    V2,
}

impl Cf {
    /// All families, in creation order.
    pub const ALL: &'static [Cf] =
        &[Cf::RaftLog, Cf::RaftMeta, Cf::Kv, Cf::Meta, Cf::Lease, Cf::Members, Cf::Auth, Cf::V2];

    /// The families that make up the applied state (what a snapshot carries).
    pub const STATE: &'static [Cf] = &[Cf::Kv, Cf::Meta, Cf::Lease, Cf::Members, Cf::Auth, Cf::V2];

    /// The on-disk name.
    pub fn name(self) -> &'static str {
        match self {
            Cf::RaftLog => "raft_log",
            Cf::RaftMeta => "raft_meta",
            Cf::Kv => "kv",
            Cf::Meta => "meta",
            Cf::Lease => "lease",
            Cf::Members => "members",
            Cf::Auth => "auth",
            Cf::V2 => "v2",
        }
    }

    /// Memtable size: the busy families get more, the rest stay small to keep RSS down.
    pub fn write_buffer_size(self) -> usize {
        match self {
            Cf::RaftLog | Cf::Kv => 16 << 20,
            _ => 1 << 20,
        }
    }
}

/// Keys of `Cf::RaftMeta`.
pub mod raft_meta_keys {
    /// The last vote this member cast or saw.
    pub const VOTE: &[u8] = b"vote";
    /// The last committed log id this member knows of.
    pub const COMMITTED: &[u8] = b"committed";
    /// The last log id removed from the log by purge.
    pub const LAST_PURGED: &[u8] = b"last_purged";
    /// This member's id (u64 big-endian): local identity, never part of a snapshot.
    pub const MEMBER_ID: &[u8] = b"member_id";
    /// The cluster's id (u64 big-endian), fixed when this member first started.
    pub const CLUSTER_ID: &[u8] = b"cluster_id";
}

/// Keys of `Cf::Meta`.
pub mod meta_keys {
    /// The last applied raft log id (bincode `Option<LogId>`), written with the data it covers.
    pub const APPLIED: &[u8] = b"applied";
    /// The last applied raft membership (bincode `StoredMembership`).
    pub const MEMBERSHIP: &[u8] = b"membership";
    /// The current MVCC revision (i64 big-endian); survives a compaction of the latest tombstone.
    pub const REVISION: &[u8] = b"revision";
    /// The revision compacted up to (i64 big-endian).
    pub const COMPACTED: &[u8] = b"compacted";
    /// Active alarms (bincode `Vec<(member id, alarm type)>`).
    pub const ALARMS: &[u8] = b"alarms";
    /// Ids of members removed from the cluster (bincode `Vec<u64>`), etcd's
    /// `members_removed`: their raft messages are answered with "removed" so they stop.
    pub const REMOVED_MEMBERS: &[u8] = b"removed_members";
}

/// Keys of `Cf::Auth` (etcd's `auth`, `authUsers` and `authRoles` buckets in one family).
pub mod auth_keys {
    /// Whether auth is enabled: one byte, 1 or 0 (etcd's `authEnabled`).
    pub const ENABLED: &[u8] = b"enabled";
    /// The auth revision (u64 big-endian), bumped by every change to users, roles or
    /// permissions and by disabling auth; absent means 1 (etcd starts its auth store at 1).
    pub const REVISION: &[u8] = b"revision";
    /// `user/<name>` → protobuf `authpb.User` (password: the bcrypt hash, never the password).
    pub const USER_PREFIX: &[u8] = b"user/";
    /// `role/<name>` → protobuf `authpb.Role`, permissions sorted by key.
    pub const ROLE_PREFIX: &[u8] = b"role/";
}

/// Keys of `Cf::V2`: one row per node, the index, and the last events (the watch window).
pub mod v2_keys {
    /// `n<path>` → JSON `v2::store::NodeRecord` (the path starts with `/`).
    pub const NODE_PREFIX: &[u8] = b"n";
    /// `e<index, u64 big-endian>` → JSON `v2::event::Event` (the last 1000 events).
    pub const EVENT_PREFIX: &[u8] = b"e";
    /// The store's current index (u64 big-endian), etcd's `CurrentIndex`.
    pub const INDEX: &[u8] = b"mindex";
    /// Set once the cluster version was written (`/0/version`), as etcd does once.
    pub const VERSION_SET: &[u8] = b"mversion";
}
