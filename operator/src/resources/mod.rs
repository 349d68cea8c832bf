//! Builders for the objects an `EtcdCluster` owns: the peer and client Services, the
//! StatefulSet of members and the PodDisruptionBudget. Pure functions from the resource to the
//! object the operator server-side applies; names and labels are defined here once.

mod pdb;
mod services;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

pub use pdb::pod_disruption_budget;
pub use services::{client_service, peer_service};
pub use statefulset::{
    args, is_founding, keep_claim_templates, statefulset, template_hash, Bootstrap, TEMPLATE_HASH,
};

use crate::crd::EtcdCluster;

/// The client port, as etcd's.
pub const CLIENT_PORT: i32 = 2379;
/// The peer port, as etcd's.
pub const PEER_PORT: i32 = 2380;
/// Label naming the cluster a member pod or volume belongs to.
pub const CLUSTER_LABEL: &str = "oxcd.dev/cluster";
/// Label of the version a member pod runs.
pub const VERSION_LABEL: &str = "oxcd.dev/version";
/// The volumeClaimTemplate's name: volumes are `data-<cluster>-<ordinal>`.
pub const VOLUME_NAME: &str = "data";
/// Where the data directory lives in the container.
pub const DATA_DIR: &str = "/var/lib/oxcd";

/// The names and addresses of one cluster's objects.
#[derive(Debug, Clone)]
pub struct Names {
    /// The cluster (= StatefulSet, peer Service and PDB) name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

impl Names {
    /// Names of `cluster`.
    pub fn of(cluster: &EtcdCluster) -> Names {
        Names { name: cluster.name_any(), namespace: cluster.namespace().unwrap_or_default() }
    }

    /// The client Service: `<name>-client`.
    pub fn client_service(&self) -> String {
        format!("{}-client", self.name)
    }

    /// Pod (= member) name of an ordinal.
    pub fn pod(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// Volume name of an ordinal.
    pub fn volume(&self, ordinal: u32) -> String {
        format!("{VOLUME_NAME}-{}-{ordinal}", self.name)
    }

    /// A pod's stable DNS name through the headless peer Service.
    pub fn host(&self, ordinal: u32) -> String {
        format!("{}.{}.{}.svc", self.pod(ordinal), self.name, self.namespace)
    }

    /// The peer URL of an ordinal's member.
    pub fn peer_url(&self, ordinal: u32) -> String {
        format!("http://{}:{PEER_PORT}", self.host(ordinal))
    }

    /// The ordinal a peer URL belongs to, if it is one of this cluster's.
    pub fn ordinal_of_peer_url(&self, url: &str) -> Option<u32> {
        let host = url.strip_prefix("http://")?.strip_suffix(&format!(":{PEER_PORT}"))?;
        let rest = host.strip_suffix(&format!(".{}.{}.svc", self.name, self.namespace))?;
        self.ordinal_of_pod(rest)
    }

    /// The ordinal of a pod or volume name (`<name>-<ordinal>`).
    pub fn ordinal_of_pod(&self, pod: &str) -> Option<u32> {
        let n = pod.strip_prefix(&self.name)?.strip_prefix('-')?;
        if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
            return None;
        }
        n.parse().ok()
    }

    /// The ordinal of a volume name (`data-<name>-<ordinal>`).
    pub fn ordinal_of_volume(&self, volume: &str) -> Option<u32> {
        self.ordinal_of_pod(volume.strip_prefix(VOLUME_NAME)?.strip_prefix('-')?)
    }

    /// The labels that select this cluster's pods and volumes.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "oxcd".to_string()),
            (CLUSTER_LABEL.to_string(), self.name.clone()),
        ])
    }

    /// The selector as a label-selector string.
    pub fn selector_string(&self) -> String {
        self.selector().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }

    /// Every label of the operator's objects.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector();
        l.insert("app.kubernetes.io/instance".into(), self.name.clone());
        l.insert("app.kubernetes.io/managed-by".into(), "oxcd-operator".into());
        l
    }
}

/// Metadata of an owned object: name, namespace, labels and the controller reference that
/// makes Kubernetes delete it with the cluster (and wakes the controller when it changes).
pub(crate) fn owned_meta(cluster: &EtcdCluster, name: String) -> ObjectMeta {
    let names = Names::of(cluster);
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels()),
        owner_references: owner(cluster).map(|o| vec![o]),
        ..Default::default()
    }
}

fn owner(cluster: &EtcdCluster) -> Option<OwnerReference> {
    cluster.controller_owner_ref(&())
}

/// The initial-cluster token: unique per resource (its UID), so members of a deleted and
/// re-created cluster of the same name can never join each other.
pub fn token(cluster: &EtcdCluster) -> String {
    let uid = cluster.meta().uid.clone().unwrap_or_default();
    format!("{}-{}", cluster.name_any(), uid.split('-').next().unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::EtcdClusterSpec;

    /// A cluster `demo` in namespace `ns` with an empty spec (all defaults).
    pub(crate) fn demo() -> EtcdCluster {
        let spec: EtcdClusterSpec = serde_json::from_str("{}").unwrap();
        let mut c = EtcdCluster::new("demo", spec);
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("1234abcd-0000-0000-0000-000000000000".into());
        c
    }

    #[test]
    fn names_and_ordinals_round_trip() {
        let n = Names::of(&demo());
        assert_eq!(n.peer_url(2), "http://demo-2.demo.ns.svc:2380");
        assert_eq!(n.ordinal_of_peer_url("http://demo-2.demo.ns.svc:2380"), Some(2));
        assert_eq!(n.ordinal_of_peer_url("http://demo-2.other.ns.svc:2380"), None);
        assert_eq!(n.ordinal_of_pod("demo-12"), Some(12));
        assert_eq!(n.ordinal_of_pod("demo-x-1"), None);
        assert_eq!(n.ordinal_of_pod("demo-01"), None);
        assert_eq!(n.ordinal_of_volume("data-demo-3"), Some(3));
        assert_eq!(n.client_service(), "demo-client");
        assert_eq!(token(&demo()), "demo-1234abcd");
    }
}
