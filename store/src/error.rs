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
    /// What a member answers to raft traffic from a member removed from the cluster (etcd's
    /// `errMemberRemoved` of its peer transport, same text); the removed member stops on it.
    #[error("the member has been permanently removed from the cluster")]
    MemberRemoved,
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
    /// Wraps a storage-level failure; storage errors are never the client's fault.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Error {
        Error::Internal(format!("{context}: {err}"))
    }
}

/// The errors that carry no payload: each is known by its code alone.
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
    Error::MemberRemoved,
];

/// How an error crosses raft and the peer link: a stable number per variant
/// (`oxcdpb.InternalError.code`) plus, for the variants that carry text, that text. The
/// numbers are wire format: never reuse one. A variant without a number travels as
/// `UNTYPED` and arrives as `Error::Internal` with its text.
impl Error {
    /// This error's code (see `Error::from_code`).
    pub fn code(&self) -> u32 {
        match self {
            Error::EmptyKey => 1,
            Error::KeyNotFound => 2,
            Error::ValueProvided => 3,
            Error::LeaseProvided => 4,
            Error::TooManyOps => 5,
            Error::DuplicateKey => 6,
            Error::RequestTooLarge => 7,
            Error::Compacted => 8,
            Error::FutureRev => 9,
            Error::NoSpace => 10,
            Error::LeaseNotFound => 11,
            Error::LeaseExist => 12,
            Error::LeaseTtlTooLarge => 13,
            Error::MemberExist => 14,
            Error::PeerUrlExist => 15,
            Error::MemberNotEnoughStarted => 16,
            Error::MemberBadUrls => 17,
            Error::MemberNotFound => 18,
            Error::MemberNotLearner => 19,
            Error::LearnerNotReady => 20,
            Error::TooManyLearners => 21,
            Error::NoLeader => 22,
            Error::NotLeader => 23,
            Error::LeaderChanged => 24,
            Error::Stopped => 25,
            Error::Timeout => 26,
            Error::TooManyRequests => 27,
            Error::Unhealthy => 28,
            Error::Corrupt => 29,
            Error::BadLeaderTransferee => 30,
            Error::NotSupportedForLearner => 31,
            Error::UserEmpty => 32,
            Error::UserAlreadyExist => 33,
            Error::UserNotFound => 34,
            Error::RoleAlreadyExist => 35,
            Error::RoleNotFound => 36,
            Error::RoleEmpty => 37,
            Error::AuthFailed => 38,
            Error::PermissionDenied => 39,
            Error::RoleNotGranted => 40,
            Error::PermissionNotGranted => 41,
            Error::AuthNotEnabled => 42,
            Error::InvalidAuthToken => 43,
            Error::InvalidAuthMgmt => 44,
            Error::RootUserNotExist => 45,
            Error::RootRoleNotExist => 46,
            Error::PermissionNotGiven => 47,
            Error::NoPasswordUser => 48,
            Error::AuthOldRevision => 49,
            Error::NotCapable => 50,
            Error::MemberRemoved => 51,
            Error::AuthUntranslated(_) => 100,
            Error::InvalidArgument(_) => 101,
            Error::Unimplemented(_) => 102,
            Error::Internal(_) => 103,
            #[allow(unreachable_patterns)]
            _ => UNTYPED,
        }
    }

    /// The text that travels with the code: the payload of the variants that carry one (for
    /// the others the code says everything, the text only helps a reader of the wire).
    pub fn detail(&self) -> String {
        self.to_string()
    }

    /// Rebuilds an error from its code and detail (see `Error::code`).
    pub fn from_code(code: u32, detail: &str) -> Error {
        match code {
            100 => UNTRANSLATED
                .iter()
                .find(|t| **t == detail)
                .map(|t| Error::AuthUntranslated(t))
                .unwrap_or_else(|| Error::Internal(detail.to_string())),
            101 => Error::InvalidArgument(detail.to_string()),
            102 => Error::Unimplemented(detail.to_string()),
            _ => KNOWN
                .iter()
                .find(|e| e.code() == code)
                .cloned()
                .unwrap_or_else(|| Error::Internal(detail.to_string())),
        }
    }
}

impl Error {
    /// The error an etcd client API answered with, known by its message as etcd's own
    /// clients know it (`rpctypes.Error` maps the status text back to the error): for calls
    /// this member makes to another member's client API (e.g. a membership change passed on
    /// to the leader). `None` for a message no payload-free error has.
    pub fn from_client_status(status: &tonic::Status) -> Option<Error> {
        KNOWN.iter().find(|e| e.to_string() == status.message()).cloned()
    }
}

/// The code of an error variant that has none of its own (it arrives as `Error::Internal`).
pub const UNTYPED: u32 = 0;

/// The texts `Error::AuthUntranslated` carries (see `auth::untranslated`).
const UNTRANSLATED: &[&str] = &[
    "auth: user name is empty",
    "auth: user not found",
    "auth: permission denied",
    "auth: invalid auth token",
];

impl From<&Error> for crate::pb::oxcdpb::InternalError {
    fn from(e: &Error) -> Self {
        crate::pb::oxcdpb::InternalError { code: e.code(), detail: e.detail() }
    }
}

impl From<crate::pb::oxcdpb::InternalError> for Error {
    fn from(e: crate::pb::oxcdpb::InternalError) -> Self {
        Error::from_code(e.code, &e.detail)
    }
}

impl From<rocksdb::Error> for Error {
    fn from(err: rocksdb::Error) -> Self {
        Error::internal("rocksdb", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_statuses_map_back_to_their_error() {
        for e in KNOWN {
            let status = tonic::Status::failed_precondition(e.to_string());
            assert_eq!(Error::from_client_status(&status).as_ref(), Some(e));
        }
        assert_eq!(Error::from_client_status(&tonic::Status::unknown("other")), None);
    }

    #[test]
    fn errors_round_trip_through_their_code() {
        let mut codes = std::collections::BTreeSet::new();
        for e in KNOWN {
            assert_ne!(e.code(), UNTYPED, "{e:?} has no code");
            assert!(codes.insert(e.code()), "{e:?} shares its code");
            assert_eq!(&Error::from(crate::pb::oxcdpb::InternalError::from(e)), e);
        }
        for e in [
            Error::AuthUntranslated("auth: permission denied"),
            Error::InvalidArgument("bad".into()),
            Error::Unimplemented("no".into()),
            Error::Internal("boom".into()),
        ] {
            assert!(codes.insert(e.code()), "{e:?} shares its code");
            assert_eq!(Error::from(crate::pb::oxcdpb::InternalError::from(&e)), e);
        }
        // Text never decides: a known message under an unknown code stays an internal error.
        assert_eq!(
            Error::from_code(9999, "etcdserver: leader changed"),
            Error::Internal("etcdserver: leader changed".into())
        );
    }
}
