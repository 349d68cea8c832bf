//! The backup API: the `EtcdSnapshot` resource (one snapshot of one cluster, taken on demand or
//! by a schedule) and the parts of `EtcdCluster.spec` that ask for scheduled backups
//! ([`BackupSpec`]) and for a cluster bootstrapped from a snapshot ([`RestoreSpec`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Keys of the credentials Secret of an S3 destination (the AWS names, so a Secret made for
/// any AWS tool works as it is).
pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, …).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Bucket {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL for a store other than AWS (e.g. `http://minio.backup.svc:9000`); requests
    /// use path-style addressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret in the cluster's namespace holding `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub credentials_secret: String,
}

/// A PersistentVolumeClaim in the cluster's namespace holding snapshot files. Snapshots are
/// written by a Job whose pod mounts it, and read by the restoring member's init container,
/// so a claim used by several pods at once wants `ReadWriteMany` (or `ReadWriteOnce` on a
/// single node).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcVolume {
    /// The claim's name.
    pub claim_name: String,
}

/// Where snapshots are stored: exactly one of an S3-compatible bucket and a
/// PersistentVolumeClaim.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.s3) != has(self.pvc)",
    "message": "a destination needs exactly one of s3 and pvc"
}]))]
pub struct Destination {
    /// An S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Bucket>,
    /// A PersistentVolumeClaim (files written by a Job, with a `.sha256` file beside each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcVolume>,
    /// Path prefix of the snapshot files, in the bucket or the claim:
    /// `<prefix>/<namespace>/<cluster>/<snapshot>.db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A snapshot of an EtcdCluster, streamed from a member's Maintenance.Snapshot to a destination
/// and checked by its SHA-256.
// Each printcolumn repeats `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "oxcd.dev",
    version = "v1alpha1",
    kind = "EtcdSnapshot",
    plural = "etcdsnapshots",
    shortname = "etcdsnap",
    namespaced,
    status = "EtcdSnapshotStatus",
    derive = "PartialEq",
    doc = "A snapshot of an oxcd cluster stored in object storage or on a volume",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision"),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.size"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSnapshotSpec {
    /// Name of the EtcdCluster (same namespace).
    pub cluster_ref: String,
    /// Where to store it.
    pub destination: Destination,
}

/// What became of a snapshot.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdSnapshotStatus {
    /// Pending, Running, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The store's revision when the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Size in bytes of the stored file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// SHA-256 (hex) of the stored file, as `sha256sum` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where it is: `s3://<bucket>/<key>` or `pvc://<claim>/<path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The member it was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Why it failed, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Scheduled backups of a cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule in UTC (`minute hour day-of-month month day-of-week`, e.g. `0 */6 * * *`;
    /// an optional leading seconds field is accepted).
    pub schedule: String,
    /// How many succeeded scheduled snapshots to keep; older ones are deleted, objects and
    /// files together.
    #[serde(default = "default_retention")]
    pub retention: i32,
    /// Where the snapshots go.
    pub destination: Destination,
}

fn default_retention() -> i32 {
    7
}

/// Bootstraps a new cluster from a snapshot file (of oxcd or of etcd: `etcdctl snapshot save`).
/// Read only when the cluster is first created; the first member restores the file, the others
/// join it and receive the data through raft. Names either an `EtcdSnapshot` or a file (in a
/// bucket or on a claim).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// A Succeeded `EtcdSnapshot` in the cluster's namespace: its bucket or claim, key and
    /// sha256 are used (then `s3`, `pvc` and `key` are not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The bucket holding the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Bucket>,
    /// The PersistentVolumeClaim holding the file (mounted read-only by the restoring member's
    /// init container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcVolume>,
    /// The file's key in the bucket, or its path in the claim (an EtcdSnapshot's
    /// `status.location` is `s3://<bucket>/<key>` or `pvc://<claim>/<path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Expected SHA-256 (hex) of the whole file (an EtcdSnapshot's `status.sha256`); the
    /// restore refuses a file that does not match. Unset: only the file's own trailer is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Phases of an [`EtcdSnapshot`].
pub mod phase {
    /// Created, not started.
    pub const PENDING: &str = "Pending";
    /// Streaming.
    pub const RUNNING: &str = "Running";
    /// Stored and verified.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Given up (see `status.message`).
    pub const FAILED: &str = "Failed";
}

impl EtcdSnapshot {
    /// Whether the snapshot is finished (succeeded or failed) and needs no more work.
    pub fn is_done(&self) -> bool {
        let p = self.status.as_ref().and_then(|s| s.phase.as_deref());
        matches!(p, Some(phase::SUCCEEDED) | Some(phase::FAILED))
    }
}

/// The EtcdSnapshot CRD as YAML, exactly as `crds/etcdsnapshot.yaml` holds it.
pub fn snapshot_crd_yaml() -> String {
    let body = serde_yaml::to_string(&EtcdSnapshot::crd()).unwrap_or_default();
    format!("# Generated by `oxcd-operator crd`; do not edit (a test compares it).\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_dir_matches_the_snapshot_type() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/etcdsnapshot.yaml");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == snapshot_crd_yaml(),
            "crds/etcdsnapshot.yaml is stale: run `cargo run -p oxcd-operator -- crd --snapshot > crds/etcdsnapshot.yaml`"
        );
    }

    #[test]
    fn retention_defaults_to_seven() {
        let b: BackupSpec = serde_json::from_value(serde_json::json!({
            "schedule": "0 * * * *",
            "destination": {"pvc": {"claimName": "backups"}}
        }))
        .unwrap();
        assert_eq!(b.retention, 7);
    }
}
