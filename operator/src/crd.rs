//! The `oxcd.dev/v1alpha1` `EtcdCluster` API: what a user asks for (spec) and what the
//! operator saw and is doing (status). The CRD YAML in `crds/` is generated from these types
//! by `oxcd-operator crd` (see [`crd`]), with admission rules (CEL) added in one place.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every oxcd resource.
pub const GROUP: &str = "oxcd.dev";
/// The largest cluster the API accepts: etcd recommends at most 7 voters; 9 is a hard cap.
pub const MAX_REPLICAS: i32 = 9;

/// A replicated oxcd (etcd-compatible) cluster: one member per pod, one volume per member.
// Each printcolumn repeats `type_ = "string"`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "oxcd.dev",
    version = "v1alpha1",
    kind = "EtcdCluster",
    plural = "etcdclusters",
    shortname = "etcdc",
    namespaced,
    status = "EtcdClusterStatus",
    derive = "PartialEq",
    doc = "An etcd-compatible oxcd cluster run by the oxcd operator",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.ready"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.currentVersion"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClusterSpec {
    /// Number of voting members (1 to 9; odd numbers tolerate the most failures per member).
    #[serde(default = "default_replicas")]
    pub replicas: i32,
    /// oxcd version to run; changing it rolls the members one at a time, the leader last.
    #[serde(default = "default_version")]
    pub version: String,
    /// Container image; default `oxcd:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Each member's volume.
    #[serde(default)]
    pub storage: StorageSpec,
    /// CPU and memory of the `oxcd` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Scheduling and metadata of the member pods.
    #[serde(default)]
    pub pod: PodOverrides,
    /// Flags passed to every member.
    #[serde(default)]
    pub server: ServerOptions,
    /// The PodDisruptionBudget kept for the members (at most one member down at a time).
    #[serde(default)]
    pub pod_disruption_budget: PdbSpec,
    /// What the operator may do when members are lost.
    #[serde(default)]
    pub recovery: RecoverySpec,
    /// How long a change of size or version may take before it is reported as failed
    /// (condition `Progressing=False`, reason `ProgressDeadlineExceeded`, and an Event), as a
    /// Deployment's: a change that cannot finish (an image that never runs) must not hold the
    /// spec locked forever, and a person must learn of it. A corrected spec starts a new one.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline_seconds: i64,
    /// Routine maintenance.
    #[serde(default)]
    pub maintenance: MaintenanceSpec,
    /// Scheduled snapshots (`EtcdSnapshot` objects) and how many to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::backup::api::BackupSpec>,
    /// Bootstrap the cluster from a snapshot file (read only when the cluster is created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::backup::api::RestoreSpec>,
    /// Convert the members' v2 keys into v3 keys, once (the `Migrated` condition records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<crate::migration::MigrationSpec>,
}

/// Routine maintenance the operator schedules.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceSpec {
    /// Defragment each member this often (minutes), one member at a time, the leader last,
    /// only while every member is healthy. Unset: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defragment_every_minutes: Option<i64>,
}

fn default_progress_deadline() -> i64 {
    600
}

fn default_replicas() -> i32 {
    3
}

fn default_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A member's persistent volume.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size (a Kubernetes quantity such as `1Gi`); it may grow, never shrink.
    #[serde(default = "default_size")]
    pub size: String,
    /// StorageClass of the volumes; fixed once the cluster exists. Default: the cluster's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to a member's volume once the member is removed by a scale-down.
    #[serde(default)]
    pub removed_member_policy: RemovedMemberPolicy,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec {
            size: default_size(),
            storage_class_name: None,
            removed_member_policy: RemovedMemberPolicy::default(),
        }
    }
}

fn default_size() -> String {
    "1Gi".to_string()
}

/// The fate of a removed member's volume.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RemovedMemberPolicy {
    /// Delete the volume after the member is removed.
    #[default]
    Delete,
    /// Keep the volume (for inspection); a later scale-up that needs its ordinal deletes it
    /// first, since its data belongs to a member that no longer exists.
    Retain,
}

/// Pod template overrides.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Affinity; default: prefer spreading members across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Tolerations of the member pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node selector of the member pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Extra labels on the member pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the member pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// PriorityClass of the member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// Flags of every member (etcd's names; unset = etcd's default).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerOptions {
    /// `--quota-backend-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_backend_bytes: Option<i64>,
    /// `--auto-compaction-mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compaction_mode: Option<AutoCompactionMode>,
    /// `--auto-compaction-retention` (hours, a duration such as `30m`, or revisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compaction_retention: Option<String>,
    /// `--snapshot-count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_count: Option<i64>,
    /// `--heartbeat-interval` in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<i64>,
    /// `--election-timeout` in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub election_timeout: Option<i64>,
    /// More flags, passed as given after the operator's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

/// etcd's `--auto-compaction-mode` values.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoCompactionMode {
    /// Keep a wall-clock window of history.
    Periodic,
    /// Keep a number of revisions.
    Revision,
}

/// The PodDisruptionBudget of the members.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    /// Whether the operator keeps a PodDisruptionBudget (maxUnavailable 1).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for PdbSpec {
    fn default() -> Self {
        PdbSpec { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// What the operator may do on its own when members are lost.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverySpec {
    /// On quorum loss: `Auto` rebuilds from the most advanced survivor with
    /// `--force-new-cluster` once a majority is permanently gone; `Manual` only reports it.
    #[serde(default)]
    pub quorum_loss: QuorumLossPolicy,
    /// A member unreachable this long counts as permanently gone (replaced, and counted for
    /// quorum loss). Unset: only a member whose volume is gone counts as gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_lost_after_seconds: Option<i64>,
}

impl Default for RecoverySpec {
    fn default() -> Self {
        RecoverySpec { quorum_loss: QuorumLossPolicy::Auto, member_lost_after_seconds: None }
    }
}

/// Quorum-loss policy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum QuorumLossPolicy {
    /// Recover automatically from the most advanced survivor.
    #[default]
    Auto,
    /// Report the loss (Degraded condition, Event) and wait for a person.
    Manual,
}

/// What the operator observed and what it is working on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClusterStatus {
    /// One word for `kubectl get`: Creating, Running, Scaling, Upgrading, Recovering, Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Available, Progressing, Degraded (Kubernetes conventions, with observedGeneration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Every member as the cluster lists it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    /// Name of the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The cluster id (hex), once the cluster exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Number of members (voters and learners); the scale subresource's status.
    #[serde(default)]
    pub replicas: i32,
    /// Healthy voting members.
    #[serde(default)]
    pub ready_replicas: i32,
    /// `ready/desired` for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// The version every member runs (unset while members differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The change in flight, locked until done or past its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// A quorum-loss recovery in flight: the survivor restarted with `--force-new-cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// Label selector of the member pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// What the last reconcile did or waits for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<String>,
    /// What the v2 → v3 migration of `spec.migration` did, once it has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<crate::migration::MigrationStatus>,
}

/// One member as the operator last saw it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Member (= pod) name; empty while an added member has not started.
    pub name: String,
    /// Member id (hex, as etcdctl prints it).
    pub id: String,
    /// Peer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_url: Option<String>,
    /// Client URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    /// Whether it leads.
    #[serde(default)]
    pub leader: bool,
    /// Whether it is a learner (not voting).
    #[serde(default)]
    pub learner: bool,
    /// Whether it answered its status call without errors.
    #[serde(default)]
    pub healthy: bool,
    /// Its revision.
    #[serde(default)]
    pub revision: i64,
    /// Its database size in bytes.
    #[serde(default)]
    pub db_size: i64,
    /// UID of the volume it was first seen healthy on: a different volume under the same name
    /// means its data is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_uid: Option<String>,
    /// When the operator last defragmented it (or first saw it, before the first time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_defragment: Option<Time>,
    /// Since when it has been unreachable (kept across reconciles to apply
    /// `recovery.memberLostAfterSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_since: Option<Time>,
}

/// A change the operator is driving: recorded before its first step so that edits made
/// mid-way wait for it and a restarted operator resumes it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Members wanted at the end of this change.
    pub replicas: i32,
    /// Version wanted at the end of this change.
    pub version: String,
    /// When the change started (the progress deadline counts from here).
    pub started: Time,
    /// When it passed `spec.progressDeadlineSeconds` unfinished: the change has failed (it is
    /// still driven while the spec asks for it, and replaced by a corrected spec at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Time>,
}

/// A recovery from quorum loss: recorded before the survivor restarts so that a restarted
/// operator finishes it instead of starting another.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// Ordinal of the survivor's pod.
    pub ordinal: i32,
    /// The survivor's member id (hex).
    pub member_id: String,
    /// Second stage: the survivor leads alone and restarts once more without
    /// `--force-new-cluster` (so a later crash cannot reset the membership again).
    #[serde(default)]
    pub restarting: bool,
    /// When it started.
    pub started: Time,
}

impl EtcdClusterSpec {
    /// The image the members run.
    pub fn image(&self) -> String {
        self.image.clone().unwrap_or_else(|| format!("oxcd:{}", self.version))
    }
}

/// An admission rule: where it goes in the spec schema, the CEL rule and its message.
struct Rule {
    /// Property path below `spec` (empty = the spec object itself).
    path: &'static [&'static str],
    rule: &'static str,
    message: &'static str,
}

/// The CEL rules the apiserver enforces; they say what is wrong in a person's words.
const RULES: &[Rule] = &[
    Rule {
        path: &[],
        rule: "self.replicas >= 1 && self.replicas <= 9",
        message: "spec.replicas must be between 1 and 9",
    },
    Rule {
        path: &["storage"],
        rule: "has(self.storageClassName) == has(oldSelf.storageClassName) && \
               (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
        message: "spec.storage.storageClassName cannot be changed once the cluster exists",
    },
    Rule {
        path: &["storage"],
        rule: "isQuantity(self.size)",
        message: "spec.storage.size must be a quantity such as 1Gi",
    },
    Rule {
        path: &["storage"],
        rule: "!isQuantity(self.size) || !isQuantity(oldSelf.size) || \
               quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
        message: "spec.storage.size cannot shrink: a volume can only grow",
    },
    Rule {
        path: &["maintenance"],
        rule: "!has(self.defragmentEveryMinutes) || self.defragmentEveryMinutes >= 1",
        message: "spec.maintenance.defragmentEveryMinutes must be at least 1",
    },
    Rule {
        path: &["restore"],
        rule: "has(self.snapshot) ? !has(self.s3) && !has(self.pvc) && !has(self.key) : \
               has(self.key) && has(self.s3) != has(self.pvc)",
        message: "spec.restore needs either snapshot, or key and one of s3 and pvc",
    },
    Rule {
        path: &[],
        rule: "!has(self.progressDeadlineSeconds) || self.progressDeadlineSeconds >= 1",
        message: "spec.progressDeadlineSeconds must be at least 1",
    },
    Rule {
        path: &["backup"],
        rule: "self.retention >= 1",
        message: "spec.backup.retention must be at least 1",
    },
    Rule {
        path: &[],
        rule: "has(self.restore) == has(oldSelf.restore) && \
               (!has(self.restore) || self.restore == oldSelf.restore)",
        message: "spec.restore cannot be changed once the cluster exists",
    },
    Rule {
        path: &["server"],
        rule: "!has(self.heartbeatInterval) || !has(self.electionTimeout) || \
               self.electionTimeout >= 5 * self.heartbeatInterval",
        message: "spec.server.electionTimeout must be at least 5 times heartbeatInterval",
    },
];

/// The CustomResourceDefinition with the admission rules, as `crds/etcdcluster.yaml` holds it.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = EtcdCluster::crd();
    for version in &mut crd.spec.versions {
        let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let Some(spec) = schema.properties.as_mut().and_then(|p| p.get_mut("spec")) else {
            continue;
        };
        for rule in RULES {
            let mut node = &mut *spec;
            for key in rule.path {
                match node.properties.as_mut().and_then(|p| p.get_mut(*key)) {
                    Some(n) => node = n,
                    None => panic!("CRD schema has no spec.{}", rule.path.join(".")),
                }
            }
            node.x_kubernetes_validations.get_or_insert_with(Vec::new).push(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
                    rule: rule.rule.to_string(),
                    message: Some(rule.message.to_string()),
                    ..Default::default()
                },
            );
        }
    }
    crd
}

/// The CRD as YAML, exactly as `crds/etcdcluster.yaml` holds it.
pub fn crd_yaml() -> String {
    let body = serde_yaml::to_string(&crd()).unwrap_or_default();
    format!("# Generated by `oxcd-operator crd`; do not edit (a test compares it).\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_dir_matches_the_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/etcdcluster.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == crd_yaml(),
            "crds/etcdcluster.yaml is stale: run `cargo run -p oxcd-operator -- crd > crds/etcdcluster.yaml`"
        );
    }

    #[test]
    fn every_rule_finds_its_schema_node() {
        let yaml = crd_yaml();
        for rule in RULES {
            assert!(yaml.contains(rule.message), "{}", rule.message);
        }
    }

    #[test]
    fn defaults_fill_an_empty_spec() {
        let spec: EtcdClusterSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.replicas, 3);
        assert_eq!(spec.storage.size, "1Gi");
        assert_eq!(spec.storage.removed_member_policy, RemovedMemberPolicy::Delete);
        assert!(spec.pod_disruption_budget.enabled);
        assert_eq!(spec.recovery.quorum_loss, QuorumLossPolicy::Auto);
        assert_eq!(spec.progress_deadline_seconds, 600);
        assert_eq!(spec.image(), format!("oxcd:{}", env!("CARGO_PKG_VERSION")));
    }
}
