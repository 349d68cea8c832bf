//! The oxcd Kubernetes operator: turns `EtcdCluster` resources into running oxcd clusters.
//!
//! Layout (see `ARCHITECTURE.md`): `crd` (the API types), `resources/` (builders for the
//! objects a cluster owns), `plan` (observed state → the one next safe step, pure),
//! `members` (etcd client calls to the members), `controller` (kube-rs `Controller`,
//! reconcile and status), `metrics`.
