//! The one error type of a member.
//!
//! Every failure a client can see is a variant here, and `api/status.rs` maps each variant to
//! etcd's gRPC code and message string in exactly one place. The message strings are API:
//! stock clients match on them (e.g. clientv3 retries on "etcdserver: leader changed").

use thiserror::Error;

/// Result alias used throughout the member.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while serving a request, named after etcd's `rpctypes` errors.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Applying lags committing too far, or too many proposals wait: etcd's back-pressure.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// etcd leaves this one untranslated: gRPC code Unknown with the auth package's text.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// The auth store changed while a request was served; etcd leaves it untranslated too.
    #[error("auth: revision in header is old")]
    AuthOldRevision,
    /// An auth failure that etcd's Maintenance service (defragment, snapshot, hash) returns
    /// without translating it: gRPC code Unknown and the auth package's text, e.g.
    /// "auth: permission denied". Built by `auth::untranslated`.
    #[error("{0}")]
    AuthUntranslated(&'static str),
    #[error("etcdserver: not capable")]
    NotCapable,
    /// A request that is malformed in a way etcd reports with its own free-form text.
    #[error("{0}")]
    InvalidArgument(String),
    /// A request for something this member does not implement.
    #[error("{0}")]
    Unimplemented(String),
    /// Local I/O or an invariant broke; the text says what, for the operator's log.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Rebuilds an error from its message, the form in which errors cross the peer network
    /// (a follower forwarding a proposal gets the leader's apply error back as text).
    pub fn from_message(message: &str) -> Error {
        KNOWN
            .iter()
            .find(|e| e.to_string() == message)
            .cloned()
            .unwrap_or_else(|| Error::Internal(message.to_string()))
    }

    /// Wraps a storage-level failure; storage errors are never the client's fault.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Error {
        Error::Internal(format!("{context}: {err}"))
    }
}

/// The errors that carry no payload, so they can be recognised from their text.
const KNOWN: &[Error] = &[
    Error::EmptyKey,
    Error::KeyNotFound,
    Error::ValueProvided,
    Error::LeaseProvided,
    Error::TooManyOps,
    Error::DuplicateKey,
    Error::RequestTooLarge,
    Error::Compacted,
    Error::FutureRev,
    Error::NoSpace,
    Error::LeaseNotFound,
    Error::LeaseExist,
    Error::LeaseTtlTooLarge,
    Error::MemberExist,
    Error::PeerUrlExist,
    Error::MemberNotEnoughStarted,
    Error::MemberBadUrls,
    Error::MemberNotFound,
    Error::MemberNotLearner,
    Error::LearnerNotReady,
    Error::TooManyLearners,
    Error::NoLeader,
    Error::NotLeader,
    Error::LeaderChanged,
    Error::Stopped,
    Error::Timeout,
    Error::TooManyRequests,
    Error::Unhealthy,
    Error::Corrupt,
    Error::BadLeaderTransferee,
    Error::NotSupportedForLearner,
    Error::UserEmpty,
    Error::UserAlreadyExist,
    Error::UserNotFound,
    Error::RoleAlreadyExist,
    Error::RoleNotFound,
    Error::RoleEmpty,
    Error::AuthFailed,
    Error::PermissionDenied,
    Error::RoleNotGranted,
    Error::PermissionNotGranted,
    Error::AuthNotEnabled,
    Error::InvalidAuthToken,
    Error::InvalidAuthMgmt,
    Error::RootUserNotExist,
    Error::RootRoleNotExist,
    Error::PermissionNotGiven,
    Error::NoPasswordUser,
    Error::AuthOldRevision,
    Error::NotCapable,
];

impl From<rocksdb::Error> for Error {
    fn from(err: rocksdb::Error) -> Self {
        Error::internal("rocksdb", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_errors_round_trip_through_their_message() {
        for e in KNOWN {
            assert_eq!(&Error::from_message(&e.to_string()), e);
        }
        assert_eq!(Error::from_message("boom"), Error::Internal("boom".into()));
    }
}
