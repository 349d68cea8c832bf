//! The one mapping from `Error` to `tonic::Status`, with etcd's gRPC codes.
//! The message is always the error's text, which is etcd's text.

use tonic::{Code, Status};

use crate::error::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let code = match &err {
            Error::EmptyKey
            | Error::KeyNotFound
            | Error::ValueProvided
            | Error::LeaseProvided
            | Error::TooManyOps
            | Error::DuplicateKey
            | Error::RequestTooLarge
            | Error::MemberBadUrls
            | Error::UserEmpty
            | Error::RoleEmpty
            | Error::PermissionNotGiven
            | Error::InvalidAuthMgmt
            | Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Compacted | Error::FutureRev | Error::LeaseTtlTooLarge => Code::OutOfRange,
            Error::NoSpace | Error::TooManyRequests => Code::ResourceExhausted,
            Error::LeaseNotFound | Error::MemberNotFound => Code::NotFound,
            Error::LeaseExist
            | Error::MemberExist
            | Error::PeerUrlExist
            | Error::MemberNotEnoughStarted
            | Error::MemberNotLearner
            | Error::LearnerNotReady
            | Error::TooManyLearners
            | Error::NotLeader
            | Error::BadLeaderTransferee
            | Error::UserAlreadyExist
            | Error::UserNotFound
            | Error::RoleAlreadyExist
            | Error::RoleNotFound
            | Error::RoleNotGranted
            | Error::PermissionNotGranted
            | Error::AuthNotEnabled
            | Error::RootUserNotExist
            | Error::RootRoleNotExist
            | Error::MemberRemoved => Code::FailedPrecondition,
            Error::AuthFailed => Code::InvalidArgument,
            Error::PermissionDenied => Code::PermissionDenied,
            Error::InvalidAuthToken => Code::Unauthenticated,
            Error::NoLeader
            | Error::LeaderChanged
            | Error::Stopped
            | Error::Timeout
            | Error::Unhealthy
            | Error::NotCapable
            | Error::NotSupportedForLearner => Code::Unavailable,
            Error::Corrupt => Code::DataLoss,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::NoPasswordUser
            | Error::AuthOldRevision
            | Error::AuthUntranslated(_)
            | Error::Internal(_) => Code::Unknown,
        };
        if let Error::Internal(msg) = &err {
            tracing::error!(error = %msg, "internal error served to a client");
        }
        Status::new(code, err.to_string())
    }
}
