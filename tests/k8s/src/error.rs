//! The rig's one error type: callers (tests, `oxcd-rig`) print it, so every variant carries
//! what a person needs to act: the binary to build, the file that failed, the log tail.

use std::path::PathBuf;

/// What can go wrong while starting or driving the rig.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference binary has not been built.
    #[error("{name} not found (looked in {looked_in}): run scripts/k8s-bins.sh to build it")]
    MissingBinary {
        /// The binary's name.
        name: &'static str,
        /// Where it was looked for.
        looked_in: String,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Cert(#[from] oxcd_e2e::certs::Error),
    /// A component did not start or did not become ready.
    #[error("{what}: {message}\n--- {} (tail) ---\n{log_tail}", .log.display())]
    Start {
        /// The component.
        what: String,
        /// What happened.
        message: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },
    /// The storage (oxcd or etcd) did not start.
    #[error("storage: {0}")]
    Storage(String),
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The admin kubeconfig could not be loaded into a client.
    #[error("kubeconfig {}: {message}", .path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The rig's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}
