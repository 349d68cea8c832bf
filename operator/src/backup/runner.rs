//! The backup loop of the leading operator: every few seconds it takes the snapshots that are
//! not done (one at a time: each is a stream from a member to the bucket; a snapshot to a
//! claim is a Job this loop starts and later reads, see `volume`), creates the
//! scheduled snapshots that are due, and prunes scheduled ones by retention (the stored file
//! first, then the object). Everything it needs is in the objects, so a new leader carries on
//! where the last one stopped; a snapshot left Running by a lost leader is taken again.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use object_store::ObjectStoreExt;

use super::api::{
    phase, BackupSpec, EtcdSnapshot, EtcdSnapshotSpec, EtcdSnapshotStatus, PvcVolume,
};
use super::schedule::{self, Kept};
use super::store::{self, Credentials};
use super::stream;
use super::volume::{self, JobState};
use super::{BackupError, Result};
use crate::crd::EtcdCluster;
use crate::resources::CLUSTER_LABEL;

/// Label of the snapshots a schedule made (retention prunes only these).
pub const SCHEDULED_LABEL: &str = "oxcd.dev/scheduled";
/// Annotation of a snapshot whose files are being removed (a prune in flight).
pub const PRUNING_ANNOTATION: &str = "oxcd.dev/pruning";
/// How often the loop looks.
const PERIOD: Duration = Duration::from_secs(3);

/// Runs until `stopped` resolves.
pub async fn run(client: Client, namespace: Option<String>, stopped: impl Future<Output = ()>) {
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = round(&client, namespace.as_deref()) => {}
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// One pass: pending snapshots, then schedules.
async fn round(client: &Client, namespace: Option<&str>) {
    match api::<EtcdSnapshot>(client, namespace).list(&ListParams::default()).await {
        Ok(list) => {
            let mut running: Vec<Running> = list.items.iter().filter_map(Running::of).collect();
            for snap in &list.items {
                if is_being_pruned(snap) {
                    finish_prune(client, snap).await;
                } else if !snap.is_done() {
                    take(client, snap, &mut running).await;
                }
            }
        }
        // No EtcdSnapshot CRD installed: backups are simply not offered.
        Err(kube::Error::Api(e)) if e.code == 404 => {
            tracing::debug!("no EtcdSnapshot CRD")
        }
        Err(e) => tracing::warn!(error = %e, "listing EtcdSnapshots"),
    }
    match api::<EtcdCluster>(client, namespace).list(&ListParams::default()).await {
        Ok(list) => {
            for cluster in list.items {
                if let Some(backup) = cluster.spec.backup.clone() {
                    if let Err(e) = scheduled(client, &cluster, &backup).await {
                        tracing::warn!(cluster = %cluster.name_any(), error = %e, "scheduled backup");
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing EtcdClusters"),
    }
}

fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), 0).unwrap_or_default()
}

/// The status fields, so that a merge patch clears those a new status leaves unset (a
/// Running message must not outlive the run).
const STATUS_FIELDS: &[&str] =
    &["phase", "revision", "size", "sha256", "location", "member", "time", "message"];

async fn set_status(api: &Api<EtcdSnapshot>, name: &str, status: EtcdSnapshotStatus) {
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        for field in STATUS_FIELDS {
            map.entry(field.to_string()).or_insert(serde_json::Value::Null);
        }
    }
    let patch = serde_json::json!({ "status": body });
    if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::warn!(snapshot = name, error = %e, "updating the EtcdSnapshot status");
    }
}

/// The client URL of a healthy member, a follower if there is one (the leader has enough to do).
fn pick_member(cluster: &EtcdCluster) -> Option<(String, String)> {
    let members = cluster.status.as_ref()?.members.clone();
    let healthy = members.into_iter().filter(|m| m.healthy && !m.learner && m.client_url.is_some());
    let mut healthy: Vec<_> = healthy.collect();
    healthy.sort_by_key(|m| m.leader);
    let m = healthy.into_iter().next()?;
    Some((m.name, m.client_url?))
}

/// Takes one snapshot and records the outcome in its status.
/// A snapshot being taken: (namespace, cluster, snapshot). One at a time per cluster, as a
/// stream to a bucket is by construction: Jobs to a claim are started one after the other.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Running(String, String, String);

impl Running {
    fn of(snap: &EtcdSnapshot) -> Option<Running> {
        let phase = snap.status.as_ref().and_then(|s| s.phase.as_deref());
        (phase == Some(phase::RUNNING)).then(|| Running::new(snap))
    }

    fn new(snap: &EtcdSnapshot) -> Running {
        let ns = snap.namespace().unwrap_or_default();
        Running(ns, snap.spec.cluster_ref.clone(), snap.name_any())
    }

    /// Another snapshot of the same cluster is being taken.
    fn other_than(running: &[Running], snap: &EtcdSnapshot) -> Option<String> {
        let me = Running::new(snap);
        running.iter().find(|r| r.0 == me.0 && r.1 == me.1 && r.2 != me.2).map(|r| r.2.clone())
    }
}

async fn take(client: &Client, snap: &EtcdSnapshot, running: &mut Vec<Running>) {
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let snaps: Api<EtcdSnapshot> = Api::namespaced(client.clone(), &ns);
    let failed = |message: String| EtcdSnapshotStatus {
        phase: Some(phase::FAILED.into()),
        message: Some(message),
        time: Some(Time(Timestamp::now())),
        ..Default::default()
    };
    let clusters: Api<EtcdCluster> = Api::namespaced(client.clone(), &ns);
    let cluster = match clusters.get_opt(&snap.spec.cluster_ref).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            let msg = format!("EtcdCluster {ns}/{} not found", snap.spec.cluster_ref);
            return set_status(&snaps, &name, failed(msg)).await;
        }
        Err(e) => return tracing::warn!(error = %e, "reading the EtcdCluster"),
    };
    let dest = &snap.spec.destination;
    let key = store::snapshot_key(dest, &ns, &snap.spec.cluster_ref, &name);
    if let Some(pvc) = &dest.pvc {
        return take_on_volume(client, snap, &cluster, pvc, key.as_ref(), running).await;
    }
    let Some(s3) = &dest.s3 else {
        let msg = "the destination names neither s3 nor pvc".to_string();
        return set_status(&snaps, &name, failed(msg)).await;
    };
    let Some((member, endpoint)) = pick_member(&cluster) else {
        return wait_for_member(&snaps, snap).await;
    };
    let running = EtcdSnapshotStatus {
        phase: Some(phase::RUNNING.into()),
        member: Some(member.clone()),
        ..Default::default()
    };
    set_status(&snaps, &name, running).await;
    let started = std::time::Instant::now();
    let outcome: Result<stream::Stored> = async {
        let creds = Credentials::from_secret(client.clone(), &ns, &s3.credentials_secret).await?;
        let bucket = store::s3(s3, &creds)?;
        stream::upload_snapshot(&endpoint, bucket.as_ref(), &key).await
    }
    .await;
    let status = match outcome {
        Ok(s) => {
            tracing::info!(
                snapshot = %format!("{ns}/{name}"), member, bytes = s.size, revision = s.revision,
                secs = started.elapsed().as_secs_f64(), "snapshot stored"
            );
            EtcdSnapshotStatus {
                phase: Some(phase::SUCCEEDED.into()),
                revision: Some(s.revision),
                size: Some(s.size as i64),
                sha256: Some(s.sha256),
                location: Some(store::location(s3, &key)),
                member: Some(member),
                time: Some(Time(Timestamp::now())),
                message: None,
            }
        }
        Err(e) => {
            tracing::warn!(snapshot = %format!("{ns}/{name}"), error = %e, "snapshot failed");
            EtcdSnapshotStatus { member: Some(member), ..failed(e.to_string()) }
        }
    };
    set_status(&snaps, &name, status).await;
}

/// Records that a snapshot waits for a healthy member (once).
async fn wait_for_member(snaps: &Api<EtcdSnapshot>, snap: &EtcdSnapshot) {
    let waiting = EtcdSnapshotStatus {
        phase: Some(phase::PENDING.into()),
        message: Some("waiting for a healthy member".into()),
        ..Default::default()
    };
    if snap.status.as_ref() != Some(&waiting) {
        set_status(snaps, &snap.name_any(), waiting).await;
    }
}

/// One look at a snapshot to a claim: starts its Job, or records what the Job reported.
async fn take_on_volume(
    client: &Client,
    snap: &EtcdSnapshot,
    cluster: &EtcdCluster,
    pvc: &PvcVolume,
    path: &str,
    running: &mut Vec<Running>,
) {
    let ns = snap.namespace().unwrap_or_default();
    let name = snap.name_any();
    let snaps: Api<EtcdSnapshot> = Api::namespaced(client.clone(), &ns);
    let job = volume::save_job_name(&name);
    let location = volume::location(pvc, path);
    let before = snap.status.clone().unwrap_or_default();
    let state = match volume::state(client, &ns, &job).await {
        Ok(s) => s,
        Err(e) => return tracing::warn!(snapshot = %name, error = %e, "reading its Job"),
    };
    let done = |outcome: Result<stream::Stored>| match outcome {
        Ok(s) => {
            tracing::info!(
                snapshot = %format!("{ns}/{name}"), bytes = s.size, revision = s.revision,
                location, "snapshot stored"
            );
            EtcdSnapshotStatus {
                phase: Some(phase::SUCCEEDED.into()),
                revision: Some(s.revision),
                size: Some(s.size as i64),
                sha256: Some(s.sha256),
                location: Some(location.clone()),
                member: before.member.clone(),
                time: Some(Time(Timestamp::now())),
                message: None,
            }
        }
        Err(e) => {
            tracing::warn!(snapshot = %format!("{ns}/{name}"), error = %e, "snapshot failed");
            EtcdSnapshotStatus {
                phase: Some(phase::FAILED.into()),
                member: before.member.clone(),
                time: Some(Time(Timestamp::now())),
                message: Some(e.to_string()),
                ..Default::default()
            }
        }
    };
    match state {
        JobState::Absent => {
            if let Some(other) = Running::other_than(running, snap) {
                let waiting = EtcdSnapshotStatus {
                    phase: Some(phase::PENDING.into()),
                    message: Some(format!("waiting for snapshot {other} to finish")),
                    ..Default::default()
                };
                if snap.status.as_ref() != Some(&waiting) {
                    set_status(&snaps, &name, waiting).await;
                }
                return;
            }
            let Some((member, endpoint)) = pick_member(cluster) else {
                return wait_for_member(&snaps, snap).await;
            };
            running.push(Running::new(snap));
            let j = volume::save_job(cluster, snap, pvc, &endpoint, path);
            if let Err(e) = volume::create(client, &j).await {
                return tracing::warn!(snapshot = %name, error = %e, "creating its Job");
            }
            let running = EtcdSnapshotStatus {
                phase: Some(phase::RUNNING.into()),
                member: Some(member),
                message: Some(format!("Job {job} streams it to {location}")),
                ..Default::default()
            };
            set_status(&snaps, &name, running).await;
        }
        JobState::Running => {}
        JobState::Succeeded(message) => {
            set_status(&snaps, &name, done(volume::parse_result(&message))).await
        }
        JobState::Failed(why) => {
            let why = format!("Job {job} failed: {why}");
            set_status(&snaps, &name, done(Err(BackupError::Config(why)))).await
        }
    }
}

/// Whether pruning `snap` has started (its files are being removed by a Job).
fn is_being_pruned(snap: &EtcdSnapshot) -> bool {
    snap.annotations().get(PRUNING_ANNOTATION).is_some_and(|v| v == "true")
}

/// Carries a started prune to its end, whatever the schedule says by now: the files, then
/// the object.
async fn finish_prune(client: &Client, snap: &EtcdSnapshot) {
    let ns = snap.namespace().unwrap_or_default();
    let clusters: Api<EtcdCluster> = Api::namespaced(client.clone(), &ns);
    let cluster = clusters.get_opt(&snap.spec.cluster_ref).await.ok().flatten();
    match delete_snapshot(client, cluster.as_ref(), snap).await {
        Ok(true) => tracing::info!(snapshot = %snap.name_any(), "pruned by retention"),
        Ok(false) => {}
        Err(e) => tracing::warn!(snapshot = %snap.name_any(), error = %e, "pruning"),
    }
}

/// Creates the due snapshot of `cluster`'s schedule and prunes by retention.
async fn scheduled(client: &Client, cluster: &EtcdCluster, backup: &BackupSpec) -> Result<()> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let snaps: Api<EtcdSnapshot> = Api::namespaced(client.clone(), &ns);
    let lp =
        ListParams::default().labels(&format!("{CLUSTER_LABEL}={name},{SCHEDULED_LABEL}=true"));
    let existing = snaps.list(&lp).await?.items;
    let created = |s: &EtcdSnapshot| s.metadata.creation_timestamp.as_ref().map(to_chrono);
    let now = Utc::now();
    let last = existing
        .iter()
        .filter_map(created)
        .max()
        .or_else(|| cluster.metadata.creation_timestamp.as_ref().map(to_chrono))
        .unwrap_or(now);
    if let Some(at) = schedule::due(&backup.schedule, last, now).map_err(BackupError::Config)? {
        let snap = EtcdSnapshot {
            metadata: ObjectMeta {
                name: Some(schedule::snapshot_name(&name, at)),
                namespace: Some(ns.clone()),
                labels: Some(
                    [
                        (CLUSTER_LABEL.to_string(), name.clone()),
                        (SCHEDULED_LABEL.into(), "true".into()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: EtcdSnapshotSpec {
                cluster_ref: name.clone(),
                destination: backup.destination.clone(),
            },
            status: None,
        };
        match snaps.create(&PostParams::default(), &snap).await {
            Ok(_) => tracing::info!(snapshot = %snap.name_any(), "scheduled snapshot created"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let kept: Vec<Kept> = existing
        .iter()
        .map(|s| Kept {
            name: s.name_any(),
            created: created(s).unwrap_or(now),
            phase: s.status.as_ref().and_then(|st| st.phase.clone()).unwrap_or_default(),
        })
        .collect();
    let retention = usize::try_from(backup.retention).unwrap_or(1).max(1);
    for gone in schedule::prune(kept, retention) {
        let Some(snap) = existing.iter().find(|s| s.name_any() == gone) else { continue };
        if delete_snapshot(client, Some(cluster), snap).await? {
            tracing::info!(snapshot = %gone, "pruned by retention");
        }
    }
    Ok(())
}

/// Deletes a snapshot's stored files, then its object. Files on a claim are removed by a
/// Job (owned by `cluster` when there is one): the snapshot is annotated first, so the prune
/// is finished even if the schedule goes away, and until the Job has succeeded this returns
/// `false` (called again by the next round).
pub async fn delete_snapshot(
    client: &Client,
    cluster: Option<&EtcdCluster>,
    snap: &EtcdSnapshot,
) -> Result<bool> {
    let ns = snap.namespace().unwrap_or_default();
    let dest = &snap.spec.destination;
    let location = snap.status.as_ref().and_then(|s| s.location.as_deref());
    if let Some(s3) = &dest.s3 {
        if let Some(key) = location.and_then(|l| store::key_of_location(s3, l)) {
            let creds =
                Credentials::from_secret(client.clone(), &ns, &s3.credentials_secret).await?;
            match store::s3(s3, &creds)?.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(pvc) = &dest.pvc {
        if let Some(path) = location.and_then(|l| volume::path_of_location(pvc, l)) {
            let job = volume::remove_job_name(&snap.name_any());
            match volume::state(client, &ns, &job).await? {
                JobState::Absent => {
                    if !is_being_pruned(snap) {
                        let snaps: Api<EtcdSnapshot> = Api::namespaced(client.clone(), &ns);
                        let mark = serde_json::json!({
                            "metadata": {"annotations": {PRUNING_ANNOTATION: "true"}}
                        });
                        let pp = PatchParams::default();
                        snaps.patch(&snap.name_any(), &pp, &Patch::Merge(&mark)).await?;
                    }
                    let job = volume::remove_job(cluster, snap, pvc, &path);
                    volume::create(client, &job).await?;
                    return Ok(false);
                }
                JobState::Running => return Ok(false),
                JobState::Succeeded(_) => volume::delete(client, &ns, &job).await?,
                JobState::Failed(why) => {
                    return Err(BackupError::Config(format!(
                        "removing {}: Job {job} failed: {why}",
                        location.unwrap_or_default()
                    )))
                }
            }
        }
    }
    let snaps: Api<EtcdSnapshot> = Api::namespaced(client.clone(), &ns);
    match snaps.delete(&snap.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(true),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(ns: &str, cluster: &str, name: &str, phase: Option<&str>) -> EtcdSnapshot {
        let mut s = EtcdSnapshot::new(
            name,
            EtcdSnapshotSpec {
                cluster_ref: cluster.into(),
                destination: crate::backup::api::Destination {
                    s3: None,
                    pvc: Some(PvcVolume { claim_name: "b".into() }),
                    prefix: None,
                },
            },
        );
        s.metadata.namespace = Some(ns.into());
        s.status =
            phase.map(|p| EtcdSnapshotStatus { phase: Some(p.into()), ..Default::default() });
        s
    }

    #[test]
    fn one_snapshot_of_a_cluster_at_a_time() {
        let all = [
            snap("ns", "a", "a-1", Some("Running")),
            snap("ns", "b", "b-1", Some("Succeeded")),
            snap("other", "a", "a-9", Some("Running")),
        ];
        let running: Vec<Running> = all.iter().filter_map(Running::of).collect();
        assert_eq!(running.len(), 2);
        let next = snap("ns", "a", "a-2", None);
        assert_eq!(Running::other_than(&running, &next).as_deref(), Some("a-1"));
        // Itself (its Job vanished) does not block it; nor do other clusters or namespaces.
        assert_eq!(Running::other_than(&running, &all[0]), None);
        assert_eq!(Running::other_than(&running, &snap("ns", "b", "b-2", None)), None);
        assert_eq!(Running::other_than(&running, &snap("x", "a", "a-3", None)), None);
    }
}
