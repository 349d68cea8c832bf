//! Helpers for tests that talk to a server through the `etcd-client` crate
//! (the Rust client most oxcd users will have) rather than etcdctl.
//!
//! The server is chosen by env `OXCD_E2E_TARGET` ([`Kind::from_env`]):
//! oxcd by default, `etcd` to run the very same tests against etcd 3.5.1
//! as a check of the tests themselves.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, Error};

use crate::server::{Kind, Member};

/// Bound on a whole client test body.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a single member of the target kind (blocking; call before or via
/// `spawn_blocking` in async code — it is fine in a multi-thread runtime).
pub fn start_target() -> Member {
    Member::start(Kind::from_env())
}

/// Connects to `url` (retrying for up to 10 s) with short timeouts.
pub async fn connect(url: &str) -> Client {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect([url], Some(opts.clone())).await {
            Ok(c) => return c,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("cannot connect etcd-client to {url}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The gRPC status code of a client error, if it is a gRPC status.
pub fn grpc_code(e: &Error) -> Option<tonic::Code> {
    match e {
        Error::GRpcStatus(s) => Some(s.code()),
        _ => None,
    }
}

/// The gRPC status message of a client error (empty if not a gRPC status).
pub fn grpc_message(e: &Error) -> String {
    match e {
        Error::GRpcStatus(s) => s.message().to_string(),
        other => other.to_string(),
    }
}

/// Asserts that `r` failed with gRPC `code` and a message containing `msg`.
#[track_caller]
pub fn assert_grpc_err<T: std::fmt::Debug>(r: Result<T, Error>, code: tonic::Code, msg: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} \"{msg}\", got Ok({v:?})"),
        Err(e) => {
            assert_eq!(grpc_code(&e), Some(code), "wrong code for error {e}");
            let m = grpc_message(&e);
            assert!(m.contains(msg), "error message {m:?} does not contain {msg:?}");
        }
    }
}

/// Runs `f` with a timeout of [`TEST_TIMEOUT`], panicking on expiry.
pub async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: timed out after {TEST_TIMEOUT:?}"),
    }
}
