//! The backup loop of the leading operator: every few seconds it takes the snapshots that are
//! not done (one at a time: each is a stream from a member to the bucket), creates the
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

use super::api::{phase, BackupSpec, EtcdSnapshot, EtcdSnapshotSpec, EtcdSnapshotStatus};
use super::schedule::{self, Kept};
use super::store::{self, Credentials};
use super::stream;
use super::{BackupError, Result};
use crate::crd::EtcdCluster;
use crate::resources::CLUSTER_LABEL;

/// Label of the snapshots a schedule made (retention prunes only these).
pub const SCHEDULED_LABEL: &str = "oxcd.dev/scheduled";
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
            for snap in list.items.into_iter().filter(|s| !s.is_done()) {
                take(client, &snap).await;
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

async fn set_status(api: &Api<EtcdSnapshot>, name: &str, status: EtcdSnapshotStatus) {
    let patch = serde_json::json!({ "status": status });
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
async fn take(client: &Client, snap: &EtcdSnapshot) {
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
    let Some((member, endpoint)) = pick_member(&cluster) else {
        let waiting = EtcdSnapshotStatus {
            phase: Some(phase::PENDING.into()),
            message: Some("waiting for a healthy member".into()),
            ..Default::default()
        };
        if snap.status.as_ref() != Some(&waiting) {
            set_status(&snaps, &name, waiting).await;
        }
        return;
    };
    let running = EtcdSnapshotStatus {
        phase: Some(phase::RUNNING.into()),
        member: Some(member.clone()),
        ..Default::default()
    };
    set_status(&snaps, &name, running).await;
    let dest = &snap.spec.destination;
    let key = store::snapshot_key(dest, &ns, &snap.spec.cluster_ref, &name);
    let started = std::time::Instant::now();
    let outcome: Result<stream::Stored> = async {
        let creds =
            Credentials::from_secret(client.clone(), &ns, &dest.s3.credentials_secret).await?;
        let bucket = store::s3(&dest.s3, &creds)?;
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
                location: Some(store::location(&dest.s3, &key)),
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
        delete_snapshot(client, snap).await?;
        tracing::info!(snapshot = %gone, "pruned by retention");
    }
    Ok(())
}

/// Deletes a snapshot's stored file, then its object.
pub async fn delete_snapshot(client: &Client, snap: &EtcdSnapshot) -> Result<()> {
    let ns = snap.namespace().unwrap_or_default();
    let dest = &snap.spec.destination;
    let location = snap.status.as_ref().and_then(|s| s.location.as_deref());
    if let Some(key) = location.and_then(|l| store::key_of_location(&dest.s3, l)) {
        let creds =
            Credentials::from_secret(client.clone(), &ns, &dest.s3.credentials_secret).await?;
        match store::s3(&dest.s3, &creds)?.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let snaps: Api<EtcdSnapshot> = Api::namespaced(client.clone(), &ns);
    match snaps.delete(&snap.name_any(), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
