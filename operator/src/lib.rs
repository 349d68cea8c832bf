//! The oxcd Kubernetes operator: turns `EtcdCluster` resources into running oxcd clusters and
//! keeps them running.
//!
//! Layout (the path of a change, see `ARCHITECTURE.md`):
//! - [`crd`]: the API types and the generated CRD with its admission (CEL) rules;
//! - [`app`]: the process: `/metrics`, leader election, the controller, shutdown;
//! - [`controller`]: the kube-rs `Controller`; `reconcile` = observe → plan → act one step →
//!   status, then requeue;
//! - [`observe`]: reads the objects and asks the members themselves (member list, status);
//! - [`plan`]: observed state → the ONE next safe step (pure, table-tested);
//! - [`members`]: the etcd client calls to members (list, add learner, promote, remove,
//!   move-leader, status, defragment);
//! - [`quantity`]: storage sizes as bytes (growing volumes);
//! - [`resources`]: builders for the Services, StatefulSet and PodDisruptionBudget;
//! - [`status`]: the status the operator applies (members, conditions, phase);
//! - [`leader`]: leader election on a `coordination.k8s.io` Lease;
//! - [`logs`]: the log output, text or JSON lines (`--log-format`);
//! - [`metrics`]: the Prometheus registry served on `/metrics`;
//! - [`backup`]: `EtcdSnapshot`s to S3-compatible storage, scheduled backups, restores;
//! - [`migration`]: `spec.migration`, the store's online v2 → v3 migration, run once.
//!
//! No state lives in the operator's memory: a restarted operator plans from the cluster and
//! the objects alone (the change in flight is recorded in `status.target`).

pub mod app;
pub mod backup;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod logs;
pub mod members;
pub mod metrics;
pub mod migration;
pub mod observe;
pub mod plan;
pub mod quantity;
pub mod resources;
pub mod status;

/// Everything that can fail in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An etcd API call to a member failed.
    #[error("etcd {op} at {endpoint}: {source}")]
    Etcd {
        /// The operation (`member add`, …).
        op: &'static str,
        /// The member's client URL.
        endpoint: String,
        /// The client's error.
        #[source]
        source: Box<etcd_client::Error>,
    },
    /// An etcd call did not answer in time.
    #[error("etcd {op} at {endpoint}: timed out")]
    EtcdTimeout {
        /// The operation.
        op: &'static str,
        /// The member's client URL.
        endpoint: String,
    },
    /// A step needs the leader and none is known.
    #[error("no leader to send {0} to")]
    NoLeader(&'static str),
    /// A step needs a member that no longer answers.
    #[error("member {0:x} does not answer")]
    Unreachable(u64),
    /// The resource lacks something the API server always sets.
    #[error("resource has no {0}")]
    MissingField(&'static str),
    /// A value could not be serialised.
    #[error("serialising: {0}")]
    Serde(#[from] serde_json::Error),
    /// A backup or restore the cluster asks for cannot go on (e.g. its EtcdSnapshot is missing).
    #[error("{0}")]
    Backup(#[from] backup::BackupError),
}

impl Error {
    /// The `error` label of the reconcile-failure counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Etcd { .. } => "etcd",
            Error::EtcdTimeout { .. } => "etcd_timeout",
            Error::NoLeader(_) => "no_leader",
            Error::Unreachable(_) => "unreachable",
            Error::MissingField(_) => "missing_field",
            Error::Serde(_) => "serde",
            Error::Backup(_) => "backup",
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
