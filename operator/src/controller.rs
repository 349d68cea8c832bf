//! The controller: a kube-rs `Controller` on `EtcdCluster` that also wakes on its StatefulSet,
//! Services, PodDisruptionBudget and member pods. Each reconcile observes, plans ONE step,
//! acts on it, applies the status and requeues; it keeps nothing in memory between runs.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crd::{EtcdCluster, Recovery, RemovedMemberPolicy};
use crate::metrics::Metrics;
use crate::observe::{observe, Observation};
use crate::plan::{plan, Desired, Step};
use crate::resources::{self, Bootstrap, Names, CLUSTER_LABEL};
use crate::{members, status, Error, Result};

/// The field manager of every write.
pub const MANAGER: &str = "oxcd-operator";

/// Requeue after acting (the effect shows within seconds).
const AFTER_STEP: Duration = Duration::from_secs(2);
/// Requeue while waiting for members.
const WHILE_WAITING: Duration = Duration::from_secs(5);
/// Quiet time before a triggered reconcile runs.
const DEBOUNCE: Duration = Duration::from_secs(1);
/// Resync of a settled cluster (member health is not a watchable object).
const RESYNC: Duration = Duration::from_secs(30);

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Metrics.
    pub metrics: Metrics,
    /// Events on the EtcdCluster.
    pub recorder: Recorder,
}

impl Context {
    /// A context whose Events name `identity` as the reporting instance.
    pub fn new(client: Client, metrics: Metrics, identity: &str) -> Context {
        let reporter = Reporter { controller: MANAGER.into(), instance: Some(identity.into()) };
        Context { recorder: Recorder::new(client.clone(), reporter), client, metrics }
    }
}

async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().ok_or(Error::MissingField("metadata.name"))?;
    let pp = PatchParams::apply(MANAGER).force();
    Ok(Api::<K>::namespaced(client.clone(), ns).patch(&name, &pp, &Patch::Apply(obj)).await?)
}

async fn delete<K>(client: &Client, ns: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match Api::<K>::namespaced(client.clone(), ns).delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// One reconcile of `cluster`.
#[tracing::instrument(skip(cluster, ctx), fields(cluster = %cluster.name_any()))]
pub async fn reconcile(cluster: Arc<EtcdCluster>, ctx: Arc<Context>) -> Result<Action> {
    let names = Names::of(&cluster);
    let ns = names.namespace.clone();
    let _timer = ctx.metrics.reconcile(&ns, &names.name);
    let client = &ctx.client;

    // The change in flight; builders see its version, not a newer edit.
    let now = k8s_openapi::jiff::Timestamp::now();
    let target = status::target(&cluster, now);
    let mut wanted = (*cluster).clone();
    wanted.spec.version = target.version.clone();

    apply(client, &ns, &resources::peer_service(&wanted)).await?;
    apply(client, &ns, &resources::client_service(&wanted)).await?;
    if wanted.spec.pod_disruption_budget.enabled {
        apply(client, &ns, &resources::pod_disruption_budget(&wanted)).await?;
    } else {
        delete::<PodDisruptionBudget>(client, &ns, &names.name).await?;
    }

    let obs = observe(client, &cluster).await?;
    let recorded = cluster.status.as_ref().and_then(|s| s.recovery.clone());
    let current = match &recorded {
        Some(r) if !r.restarting => Bootstrap::Recover { ordinal: r.ordinal.max(0) as u32 },
        _ => Bootstrap::Existing,
    };
    let view = obs.planner_view(&cluster, &resources::template_hash(&wanted, current));
    let desired = Desired {
        replicas: target.replicas.clamp(1, crate::crd::MAX_REPLICAS) as u32,
        auto_recover: cluster.spec.recovery.quorum_loss == crate::crd::QuorumLossPolicy::Auto,
        member_lost_after_secs: cluster.spec.recovery.member_lost_after_seconds,
        delete_removed_volumes: cluster.spec.storage.removed_member_policy
            == RemovedMemberPolicy::Delete,
        defragment_every_secs: cluster
            .spec
            .maintenance
            .defragment_every_minutes
            .map(|m| m.saturating_mul(60)),
        volume_bytes: crate::quantity::bytes(&cluster.spec.storage.size),
    };
    let step = plan(&desired, &view);
    tracing::info!(step = %status::describe(&step), "planned");

    // A recovery is recorded before the survivor restarts and cleared once it leads alone.
    let recovery = match &step {
        Step::ForceNewCluster { ordinal, id } => Some(Recovery {
            ordinal: *ordinal as i32,
            member_id: format!("{id:x}"),
            restarting: false,
            started: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
        }),
        Step::FinishRecovery { .. } => recorded.clone().map(|r| Recovery { restarting: true, ..r }),
        Step::EndRecovery => None,
        _ => recorded.clone(),
    };
    // The StatefulSet is applied every time so its template follows the spec; its replicas
    // change only through a ScaleStatefulSet step (and back to the survivor's ordinal + 1
    // when a recovery ends, so the survivor's pod stays).
    let bootstrap = match &recovery {
        Some(r) if !r.restarting => Bootstrap::Recover { ordinal: r.ordinal.max(0) as u32 },
        _ if view.bootstrapped || obs.members.is_some() => Bootstrap::Existing,
        _ => Bootstrap::New,
    };
    if bootstrap == Bootstrap::New {
        // A restore naming an EtcdSnapshot founds the cluster from that snapshot's file.
        crate::backup::restore::resolve(client, &mut wanted).await?;
    }
    let replicas = match &step {
        Step::ScaleStatefulSet { replicas } => *replicas,
        Step::FinishRecovery { ordinal } => ordinal + 1,
        _ => view.sts_replicas.unwrap_or(1),
    };
    let mut sts = resources::statefulset(&wanted, replicas, bootstrap);
    if let Some(existing) = &obs.sts {
        // The API refuses changes to volumeClaimTemplates: a larger spec.storage.size grows
        // the volumes themselves (ExpandVolume), the template keeps the size it was made with.
        resources::keep_claim_templates(&mut sts, existing);
    }
    apply(client, &ns, &sts).await?;

    act(&ctx, &cluster, &obs, &step).await?;

    let mut new_status = status::compute(&cluster, &obs, &step, status::next_target(target, &step));
    new_status.recovery = recovery;
    let settled = matches!(step, Step::Done);
    let leader = obs.leader().map(|(_, e)| e.to_string());
    let migrated = crate::migration::reconcile(
        client,
        &cluster,
        leader.as_deref(),
        settled,
        &mut new_status,
        now,
    )
    .await;
    if let Some(outcome) = migrated {
        publish_migration(&ctx, &cluster, &outcome).await;
    }
    ctx.metrics.observe_cluster(&ns, &names.name, &new_status);
    publish_transition(&ctx, &cluster, &new_status).await;
    publish_attention(&ctx, &cluster, &step, &new_status).await;
    let patch = serde_json::json!({
        "apiVersion": "oxcd.dev/v1alpha1",
        "kind": "EtcdCluster",
        "status": new_status,
    });
    Api::<EtcdCluster>::namespaced(client.clone(), &ns)
        .patch_status(&names.name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await?;

    Ok(match step {
        Step::Done => Action::requeue(RESYNC),
        Step::Wait(_) => Action::requeue(WHILE_WAITING),
        _ => Action::requeue(AFTER_STEP),
    })
}

/// Carries out one step.
async fn act(ctx: &Context, cluster: &EtcdCluster, obs: &Observation, step: &Step) -> Result<()> {
    let client = &ctx.client;
    let names = &obs.names;
    let ns = names.namespace.as_str();
    let leader = || obs.leader().map(|(_, e)| e.to_string());
    let label = match step {
        Step::ScaleStatefulSet { .. } => "scale_statefulset",
        Step::AddLearner { .. } => "add_learner",
        Step::ResetOrdinal { .. } => "reset_ordinal",
        Step::Promote { .. } => "promote",
        Step::MoveLeader { .. } => "move_leader",
        Step::RemoveMember { .. } => "remove_member",
        Step::DeleteVolume { .. } => "delete_volume",
        Step::RestartPod { .. } => "restart_pod",
        Step::RestartFounder { .. } => "restart_founder",
        Step::ExpandVolume { .. } => "expand_volume",
        Step::Defragment { .. } => "defragment",
        Step::ForceNewCluster { .. } => "force_new_cluster",
        Step::FinishRecovery { .. } => "finish_recovery",
        Step::EndRecovery => "end_recovery",
        Step::Wait(_) | Step::Done => return Ok(()),
    };
    ctx.metrics.steps.with_label_values(&[label]).inc();
    let (reason, warn) = match step {
        Step::ScaleStatefulSet { .. } => ("StatefulSetScaled", false),
        Step::AddLearner { ordinal } => {
            let endpoint = leader().ok_or(Error::NoLeader("member add"))?;
            let id = members::add_learner(&endpoint, &names.peer_url(*ordinal)).await?;
            tracing::info!(ordinal, member = %format!("{id:x}"), "learner added");
            ("MemberAdded", false)
        }
        Step::ResetOrdinal { ordinal } => {
            // The volume first: it goes once its pod is gone, and the StatefulSet controller
            // does not start the new pod on a volume being deleted.
            delete::<PersistentVolumeClaim>(client, ns, &names.volume(*ordinal)).await?;
            delete::<Pod>(client, ns, &names.pod(*ordinal)).await?;
            ("OrdinalReset", true)
        }
        Step::Promote { id } => {
            let endpoint = leader().ok_or(Error::NoLeader("member promote"))?;
            match members::promote(&endpoint, *id).await {
                Err(e) if members::is_learner_not_ready(&e) => return Ok(()),
                r => r?,
            }
            ("MemberPromoted", false)
        }
        Step::MoveLeader { to, .. } => {
            let endpoint = leader().ok_or(Error::NoLeader("move-leader"))?;
            members::move_leader(&endpoint, *to).await?;
            ("LeaderMoved", false)
        }
        Step::RemoveMember { id, .. } => {
            let endpoint = leader().ok_or(Error::NoLeader("member remove"))?;
            members::remove(&endpoint, *id).await?;
            ("MemberRemoved", true)
        }
        Step::DeleteVolume { ordinal } => {
            delete::<PersistentVolumeClaim>(client, ns, &names.volume(*ordinal)).await?;
            ("VolumeDeleted", false)
        }
        Step::RestartPod { ordinal } => {
            delete::<Pod>(client, ns, &names.pod(*ordinal)).await?;
            ("PodRestarted", false)
        }
        Step::RestartFounder { ordinal } => {
            delete::<Pod>(client, ns, &names.pod(*ordinal)).await?;
            ("FounderRestarted", false)
        }
        Step::ExpandVolume { ordinal } => {
            let size = &cluster.spec.storage.size;
            let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                .patch(&names.volume(*ordinal), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            ("VolumeExpanded", false)
        }
        Step::Defragment { id } => {
            let (endpoint, _) = obs.statuses.get(id).ok_or(Error::Unreachable(*id))?;
            members::defragment(endpoint).await?;
            ("MemberDefragmented", false)
        }
        // The StatefulSet applied before this runs only the survivor, with the flag.
        Step::ForceNewCluster { .. } => ("RecoveryStarted", true),
        Step::FinishRecovery { .. } => ("RecoveryRestart", true),
        Step::EndRecovery => ("Recovered", true),
        Step::Wait(_) | Step::Done => return Ok(()),
    };
    let event = Event {
        type_: if warn { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(status::describe(step)),
        action: label.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an Event");
    }
    Ok(())
}

/// An Event when the phase changes (Running, Degraded, QuorumLost, …), never on repeats.
async fn publish_transition(
    ctx: &Context,
    cluster: &EtcdCluster,
    new: &crate::crd::EtcdClusterStatus,
) {
    let old = cluster.status.as_ref().and_then(|s| s.phase.clone());
    if old == new.phase {
        return;
    }
    let phase = new.phase.clone().unwrap_or_default();
    let warn = matches!(phase.as_str(), "Degraded" | "QuorumLost");
    let event = Event {
        type_: if warn { EventType::Warning } else { EventType::Normal },
        reason: phase.clone(),
        note: new.last_step.clone(),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an Event");
    }
}

/// A Warning Event, once, for what a person must act on: a change past its progress deadline
/// (`ProgressDeadlineExceeded`), and quorum lost for good under `recovery.quorumLoss: Manual`
/// (`ManualRecoveryRequired`, whose note says what to do).
async fn publish_attention(
    ctx: &Context,
    cluster: &EtcdCluster,
    step: &Step,
    new: &crate::crd::EtcdClusterStatus,
) {
    let previous = cluster.status.as_ref();
    let mut notes = Vec::new();
    if let Some(note) = status::newly_failed(previous, new) {
        notes.push(("ProgressDeadlineExceeded", note));
    }
    let manual = matches!(step, Step::Wait(crate::plan::Waiting::QuorumLost { manual: true }));
    if manual && previous.and_then(|s| s.last_step.as_ref()) != new.last_step.as_ref() {
        notes.push(("ManualRecoveryRequired", status::describe(step)));
    }
    for (reason, note) in notes {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an Event");
        }
    }
}

/// An Event for a migration call: `Migrated`, or a warning saying why it did not convert.
async fn publish_migration(
    ctx: &Context,
    cluster: &EtcdCluster,
    outcome: &Result<crate::migration::MigrationStatus, crate::migration::MigrationError>,
) {
    let (warn, reason, note) = match outcome {
        Ok(done) => (
            false,
            "Migrated",
            format!("v2 keys converted into {} v3 keys at revision {}", done.keys, done.revision),
        ),
        Err(e) => (true, "MigrationFailed", e.to_string()),
    };
    let event = Event {
        type_: if warn { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(note),
        action: "Migrate".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(error = %e, "publishing an Event");
    }
}

/// A failed reconcile is counted and retried soon; the next one re-observes everything.
pub fn error_policy(_cluster: Arc<EtcdCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    ctx.metrics.failures.with_label_values(&[error.metric_label()]).inc();
    Action::requeue(WHILE_WAITING)
}

/// Runs the controller until `shutdown` resolves. `namespace` limits it to one namespace.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let clusters: Api<EtcdCluster> = api(&client, &namespace);
    if let Err(e) = clusters.list(&kube::api::ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list EtcdClusters ({e}); is the CRD installed? `oxcd-operator crd | kubectl apply -f -`"
        );
    }
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=oxcd-operator");
    let pods = watcher::Config::default().labels("app.kubernetes.io/name=oxcd");
    Controller::new(clusters, watcher::Config::default())
        // Each reconcile applies the status (member revisions move with every write), which
        // triggers the next one: the debounce bounds that loop to about one per second.
        .with_config(kube::runtime::controller::Config::default().debounce(DEBOUNCE))
        .owns(api::<StatefulSet>(&client, &namespace), owned.clone())
        .owns(api::<Service>(&client, &namespace), owned.clone())
        .owns(api::<PodDisruptionBudget>(&client, &namespace), owned)
        .watches(api::<Pod>(&client, &namespace), pods, |pod| {
            let cluster = pod.labels().get(CLUSTER_LABEL)?.clone();
            Some(ObjectRef::<EtcdCluster>::new(&cluster).within(&pod.namespace()?))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller");
            }
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests;
