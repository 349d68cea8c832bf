//! Where the reference binaries built by `scripts/k8s-bins.sh` are.
//!
//! The script pins the versions (Kubernetes v1.36.3, etcd 3.6, helm v4) and caches them under
//! `~/.cache/oxcd/k8s/<set>-<version>/`; [`oxcd_e2e::bins::source_built_dir`] asks it where.
//! Nothing here builds: a missing binary is an [`Error::MissingBinary`] naming the script, so a
//! test fails at once with the command to run instead of minutes into a Go build.

use std::path::PathBuf;

use crate::error::{Error, Result};

fn in_set(set: &str, name: &'static str) -> Result<PathBuf> {
    let missing = || Error::MissingBinary {
        name,
        looked_in: format!("the `{set}` set of scripts/k8s-bins.sh --print"),
    };
    let dir = oxcd_e2e::bins::source_built_dir(set).ok_or_else(missing)?;
    let bin = dir.join(name);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Error::MissingBinary { name, looked_in: dir.display().to_string() })
    }
}

/// kube-apiserver.
pub fn kube_apiserver() -> Result<PathBuf> {
    in_set("kubernetes", "kube-apiserver")
}

/// kube-controller-manager.
pub fn kube_controller_manager() -> Result<PathBuf> {
    in_set("kubernetes", "kube-controller-manager")
}

/// kubectl of the same release as the apiserver.
pub fn kubectl() -> Result<PathBuf> {
    in_set("kubernetes", "kubectl")
}

/// helm v4.
pub fn helm() -> Result<PathBuf> {
    in_set("helm", "helm")
}

/// etcd 3.6 (the server; etcdctl and etcdutl are beside it).
pub fn etcd36() -> Result<PathBuf> {
    in_set("etcd", "etcd")
}

/// etcdctl 3.6.
pub fn etcdctl36() -> Result<PathBuf> {
    in_set("etcd", "etcdctl")
}
