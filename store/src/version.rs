//! The versions oxcd reports as etcd's: in status, `/version` and snapshot files alike.

/// The etcd version oxcd reports: tools gate features on it, and oxcd speaks etcd 3.5's API.
/// At least 3.5.13: kube-apiserver (1.31+) turns RequestWatchProgress off below it (etcd
/// issues 15220 and 17507, whose fixed behaviour oxcd's watch has), and with it streaming lists
/// and consistent reads from its watch cache.
pub const ETCD_VERSION: &str = "3.5.13";
/// The cluster version reported alongside it.
pub const CLUSTER_VERSION: &str = "3.5.0";
