//! A real Kubernetes control plane for tests, on 127.0.0.0/8 only.
//!
//! * [`bins`] — the reference binaries built by `scripts/k8s-bins.sh` (kube-apiserver,
//!   kube-controller-manager, kubectl, helm, etcd 3.6).
//! * [`certs`] — the rig's own CA and serving/client certificates (rcgen).
//! * [`kubeconfig`] — kubeconfig files for the admin and the controller manager.
//! * [`process`] — a child process with a log file that never outlives its owner.
//! * [`control_plane`] — oxcd (or etcd 3.6) + kube-apiserver + kube-controller-manager.
//! * [`kubelet`] — the process kubelet: a Node whose pods run as local processes, each on its
//!   own loopback address, with volumes as directories and names resolvable.
//! * [`storage_suite`] — Kubernetes' storage conformance suites (k8s.io/apiserver's etcd3 and
//!   cacher tests) run against oxcd or etcd, built by `scripts/k8s-storage-suite.sh`.
//!
//! Start it by hand with `cargo run -p oxcd-k8s-rig --bin oxcd-rig` (see the README).

pub mod bins;
pub use oxcd_e2e::certs;
pub mod control_plane;
pub mod error;
pub mod kubeconfig;
pub mod kubelet;
pub mod poll;
pub mod process;
pub mod storage_suite;

pub use control_plane::{ControlPlane, Options, StorageKind};
pub use error::{Error, Result};
