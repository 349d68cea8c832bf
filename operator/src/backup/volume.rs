//! Snapshots on a PersistentVolumeClaim.
//!
//! The operator cannot mount a claim itself (a pod's volumes are fixed when it starts), so a
//! snapshot to a claim is a Job in the cluster's namespace, owned by its `EtcdSnapshot`: one
//! pod mounting the claim at [`MOUNT`] runs `oxcd-operator save-snapshot`, which streams the
//! member's Maintenance.Snapshot into `<path>` (trailer checked, read back and hashed) with
//! `<path>.sha256` beside it, and reports `{size, sha256, revision}` as its termination
//! message, which the operator reads from the pod's status. Pruning a snapshot by retention
//! runs a second Job (`remove-snapshot`, owned by the cluster) and deletes the object once the
//! files are gone. Restoring mounts the claim read-only in the founding member's init
//! container (see `restore`).

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, Pod, PodSpec, PodTemplateSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};

use super::api::{EtcdSnapshot, PvcVolume};
use super::stream::Stored;
use super::{BackupError, Result};
use crate::crd::EtcdCluster;
use crate::resources::CLUSTER_LABEL;

/// Where snapshot Jobs and restoring init containers mount the claim.
pub const MOUNT: &str = "/backup";
/// The name of the claim's volume in those pods.
pub const VOLUME: &str = "backup";
/// Label naming the EtcdSnapshot a Job works for.
pub const SNAPSHOT_LABEL: &str = "oxcd.dev/snapshot";
/// Where the Job's container writes its result.
const RESULT: &str = "/dev/termination-log";
/// Retries of a snapshot Job's pod (a member restarting mid-stream).
const BACKOFF_LIMIT: i32 = 2;

/// `pvc://<claim>/<path>`, as status.location shows it.
pub fn location(pvc: &PvcVolume, path: &str) -> String {
    format!("pvc://{}/{path}", pvc.claim_name)
}

/// The path in `pvc` of a `pvc://<claim>/<path>` location.
pub fn path_of_location(pvc: &PvcVolume, location: &str) -> Option<String> {
    let rest = location.strip_prefix("pvc://")?.strip_prefix(pvc.claim_name.as_str())?;
    let path = rest.strip_prefix('/')?;
    (!path.is_empty() && !path.split('/').any(|c| c == "..")).then(|| path.to_string())
}

/// The file's path as the Job's pod sees it.
pub fn mounted(path: &str) -> String {
    format!("{MOUNT}/{}", path.trim_start_matches('/'))
}

/// The snapshot Job of `snap`.
pub fn save_job_name(snap: &str) -> String {
    job_name(snap, "snapshot")
}

/// The Job removing `snap`'s files.
pub fn remove_job_name(snap: &str) -> String {
    job_name(snap, "remove")
}

/// The longest Job name: the Job controller puts the name in its pods' `job-name` label, a
/// label value of at most 63 characters, and the API server refuses a longer one.
const MAX_JOB_NAME: usize = 63;

/// `<snap>-<suffix>`, or when that is too long, as much of `snap` as fits, a short hash of the
/// whole of it (two long names sharing a beginning get two Jobs) and `-<suffix>`.
fn job_name(snap: &str, suffix: &str) -> String {
    let plain = format!("{snap}-{suffix}");
    if plain.len() <= MAX_JOB_NAME {
        return plain;
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(snap.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let room = MAX_JOB_NAME - hash.len() - suffix.len() - 2;
    // Object names are ASCII; a name part must end with a letter or digit.
    let head = snap.get(..room.min(snap.len())).unwrap_or("");
    let head = head.trim_end_matches(['-', '.']);
    format!("{head}-{hash}-{suffix}")
}

/// The claim as a volume of a pod.
pub fn claim_volume(pvc: &PvcVolume, read_only: bool) -> Volume {
    Volume {
        name: VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: pvc.claim_name.clone(),
            read_only: read_only.then_some(true),
        }),
        ..Default::default()
    }
}

fn owner<K: Resource<DynamicType = ()>>(obj: &K) -> Option<OwnerReference> {
    let mut o = obj.controller_owner_ref(&())?;
    // A Job being collected with its owner need not wait for anything.
    o.block_owner_deletion = None;
    Some(o)
}

/// A one-pod Job running `oxcd-operator <args>` with the claim mounted at [`MOUNT`].
fn job(
    name: String,
    snap: &EtcdSnapshot,
    image: String,
    pvc: &PvcVolume,
    args: Vec<String>,
    owner: Option<OwnerReference>,
) -> Job {
    let snapshot = snap.name_any();
    let labels: std::collections::BTreeMap<String, String> = [
        (CLUSTER_LABEL.to_string(), snap.spec.cluster_ref.clone()),
        (SNAPSHOT_LABEL.to_string(), snapshot),
        ("app.kubernetes.io/managed-by".to_string(), crate::controller::MANAGER.to_string()),
    ]
    .into();
    let container = Container {
        name: "snapshot".into(),
        image: Some(image),
        command: Some(vec!["oxcd-operator".into()]),
        args: Some(args),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME.into(),
            mount_path: MOUNT.into(),
            ..Default::default()
        }]),
        termination_message_path: Some(RESULT.into()),
        // A crash before the result is written still says why, from the log.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: snap.namespace(),
            labels: Some(labels.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(BACKOFF_LIMIT),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![claim_volume(pvc, false)]),
                    restart_policy: Some("Never".into()),
                    // It talks to a member, never to the Kubernetes API.
                    automount_service_account_token: Some(false),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The Job that streams `snap` from the member at `endpoint` to `path` on `pvc`.
pub fn save_job(
    cluster: &EtcdCluster,
    snap: &EtcdSnapshot,
    pvc: &PvcVolume,
    endpoint: &str,
    path: &str,
) -> Job {
    let name = snap.name_any();
    let args = vec![
        "save-snapshot".into(),
        format!("--endpoint={endpoint}"),
        format!("--file={}", mounted(path)),
        format!("--result-file={RESULT}"),
    ];
    job(save_job_name(&name), snap, cluster.spec.image(), pvc, args, owner(snap))
}

/// The Job that removes `snap`'s file at `path` on `pvc` (owned by the cluster: it outlives
/// the EtcdSnapshot, which is deleted once it has succeeded).
pub fn remove_job(
    cluster: Option<&EtcdCluster>,
    snap: &EtcdSnapshot,
    pvc: &PvcVolume,
    path: &str,
) -> Job {
    let name = snap.name_any();
    let args = vec!["remove-snapshot".into(), format!("--file={}", mounted(path))];
    // The cluster gone, the Job still runs (the image of the operator's own version) and
    // stays, done, for someone to delete.
    let image = cluster
        .map(|c| c.spec.image())
        .unwrap_or_else(|| format!("oxcd:{}", env!("CARGO_PKG_VERSION")));
    job(remove_job_name(&name), snap, image, pvc, args, cluster.and_then(owner))
}

/// Where a Job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not created yet.
    Absent,
    /// Running (or its pod not yet started).
    Running,
    /// Succeeded; the termination message of its succeeded pod.
    Succeeded(String),
    /// Failed for good; why, as its last pod said it (or the Job's condition).
    Failed(String),
}

fn condition(job: &Job, type_: &str) -> Option<String> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    let c = conds.iter().find(|c| c.type_ == type_ && c.status == "True")?;
    Some(c.message.clone().unwrap_or_default())
}

/// The termination message of the pod's container, if it ended with `phase`.
fn message_of(pod: &Pod, phase: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some(phase) {
        return None;
    }
    let cs = status.container_statuses.as_ref()?.first()?;
    Some(cs.state.as_ref()?.terminated.as_ref()?.message.clone().unwrap_or_default())
}

/// The state of `job` given its pods (pure).
pub fn job_state(job: Option<&Job>, pods: &[Pod]) -> JobState {
    let Some(job) = job else { return JobState::Absent };
    if condition(job, "Complete").is_some() {
        let msg = pods.iter().find_map(|p| message_of(p, "Succeeded")).unwrap_or_default();
        return JobState::Succeeded(msg);
    }
    if let Some(why) = condition(job, "Failed") {
        let mut failed: Vec<&Pod> =
            pods.iter().filter(|p| message_of(p, "Failed").is_some()).collect();
        failed.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        let last = failed.last().and_then(|p| message_of(p, "Failed")).filter(|m| !m.is_empty());
        return JobState::Failed(last.unwrap_or(why).trim().to_string());
    }
    JobState::Running
}

/// The result a snapshot Job's pod reported.
pub fn parse_result(message: &str) -> Result<Stored> {
    serde_json::from_str(message.trim()).map_err(|e| {
        BackupError::Corrupt(format!("the snapshot Job reported {message:?}, not a result: {e}"))
    })
}

/// The state of Job `name` in `ns`.
pub async fn state(client: &Client, ns: &str, name: &str) -> Result<JobState> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let Some(job) = jobs.get_opt(name).await? else { return Ok(JobState::Absent) };
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
    let pods = pods.list(&lp).await?.items;
    Ok(job_state(Some(&job), &pods))
}

/// Creates `job` (one that exists already is fine: a previous round made it).
pub async fn create(client: &Client, job: &Job) -> Result<()> {
    let ns = job.namespace().unwrap_or_default();
    match Api::<Job>::namespaced(client.clone(), &ns).create(&PostParams::default(), job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes Job `name` and its pods.
pub async fn delete(client: &Client, ns: &str, name: &str) -> Result<()> {
    let dp = kube::api::DeleteParams::background();
    match Api::<Job>::namespaced(client.clone(), ns).delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    fn pvc() -> PvcVolume {
        PvcVolume { claim_name: "backups".into() }
    }

    fn snap() -> EtcdSnapshot {
        let mut s: EtcdSnapshot = serde_json::from_value(serde_json::json!({
            "apiVersion": "oxcd.dev/v1alpha1", "kind": "EtcdSnapshot",
            "metadata": {"name": "nightly", "namespace": "ns", "uid": "u-1"},
            "spec": {"clusterRef": "demo", "destination": {"pvc": {"claimName": "backups"}}}
        }))
        .unwrap();
        s.status = None;
        s
    }

    #[test]
    fn locations_round_trip_and_stay_on_the_claim() {
        let loc = location(&pvc(), "ns/demo/nightly.db");
        assert_eq!(loc, "pvc://backups/ns/demo/nightly.db");
        assert_eq!(path_of_location(&pvc(), &loc).as_deref(), Some("ns/demo/nightly.db"));
        assert_eq!(path_of_location(&pvc(), "pvc://other/x.db"), None);
        assert_eq!(path_of_location(&pvc(), "pvc://backups/../etc/x"), None);
        assert_eq!(path_of_location(&pvc(), "s3://backups/x.db"), None);
        assert_eq!(mounted("ns/demo/nightly.db"), "/backup/ns/demo/nightly.db");
    }

    #[test]
    fn the_save_job_mounts_the_claim_and_reports_through_its_termination_message() {
        let cluster = crate::resources::tests::demo();
        let j = save_job(
            &cluster,
            &snap(),
            &pvc(),
            "http://demo-1.demo.ns.svc:2379",
            "ns/demo/nightly.db",
        );
        assert_eq!(j.metadata.name.as_deref(), Some("nightly-snapshot"));
        let owner = &j.metadata.owner_references.clone().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("EtcdSnapshot", "nightly"));
        let spec = j.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let vol = &pod.volumes.unwrap()[0];
        assert_eq!(vol.persistent_volume_claim.as_ref().unwrap().claim_name, "backups");
        let c = &pod.containers[0];
        assert_eq!(
            c.args.clone().unwrap(),
            vec![
                "save-snapshot",
                "--endpoint=http://demo-1.demo.ns.svc:2379",
                "--file=/backup/ns/demo/nightly.db",
                "--result-file=/dev/termination-log"
            ]
        );
        assert_eq!(c.termination_message_path.as_deref(), Some("/dev/termination-log"));
        let r = remove_job(Some(&cluster), &snap(), &pvc(), "ns/demo/nightly.db");
        assert_eq!(r.metadata.name.as_deref(), Some("nightly-remove"));
        let owner = &r.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(owner.kind, "EtcdCluster", "outlives the snapshot it removes");
    }

    fn job_with(cond: &str, message: &str) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: cond.into(),
                    status: "True".into(),
                    message: Some(message.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(phase: &str, message: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            message: Some(message.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn job_states_from_the_job_and_its_pods() {
        assert_eq!(job_state(None, &[]), JobState::Absent);
        assert_eq!(job_state(Some(&Job::default()), &[]), JobState::Running);
        let result = r#"{"size":20512,"sha256":"ab","revision":51}"#;
        let done = job_state(
            Some(&job_with("Complete", "")),
            &[pod("Failed", "connection refused"), pod("Succeeded", result)],
        );
        assert_eq!(done, JobState::Succeeded(result.into()));
        let stored = parse_result(result).unwrap();
        assert_eq!((stored.size, stored.revision), (20512, 51));
        assert!(parse_result("panicked at ...").is_err());
        let failed = job_state(
            Some(&job_with("Failed", "Job has reached the specified backoff limit")),
            &[pod("Failed", "snapshot from http://x:2379: timed out\n")],
        );
        assert_eq!(failed, JobState::Failed("snapshot from http://x:2379: timed out".into()));
        let no_pods = job_state(Some(&job_with("Failed", "DeadlineExceeded")), &[]);
        assert_eq!(no_pods, JobState::Failed("DeadlineExceeded".into()));
    }

    #[test]
    fn job_names_fit_a_label_value_and_stay_distinct() {
        assert_eq!(save_job_name("nightly"), "nightly-snapshot");
        assert_eq!(remove_job_name("nightly"), "nightly-remove");
        // A scheduled snapshot of a long cluster name: 253 characters is a valid object name.
        let long = "a".repeat(240) + "-20261204-0700";
        let other = "a".repeat(240) + "-20261204-0800";
        for name in [save_job_name(&long), remove_job_name(&long)] {
            assert!(name.len() <= 63, "{name} is {} long", name.len());
            assert!(name.starts_with("aaaa"), "{name}");
        }
        assert!(save_job_name(&long).ends_with("-snapshot"));
        assert_ne!(save_job_name(&long), save_job_name(&other));
        assert_eq!(save_job_name(&long), save_job_name(&long), "the same Job every round");
        // Exactly at the limit stays as it is; a cut never leaves '-' or '.' before the hash.
        let at_limit = "b".repeat(63 - "-snapshot".len());
        assert_eq!(save_job_name(&at_limit), format!("{at_limit}-snapshot"));
        let dotted = "c".repeat(44) + "." + &"d".repeat(30);
        let name = save_job_name(&dotted);
        assert!(!name.contains(".-") && !name.contains("--"), "{name}");
        assert!(name.len() <= 63, "{name}");
    }
}
