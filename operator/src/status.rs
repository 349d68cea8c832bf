//! The status the operator applies after each reconcile: members as the cluster lists them,
//! leader, conditions (Kubernetes conventions: `Available`, `Progressing`, `Degraded`, each with
//! observedGeneration and a transition time that moves only when the status flips), phase,
//! and the change in flight (`target`). Pure, so it is unit-tested.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;

use crate::crd::{EtcdCluster, EtcdClusterStatus, MemberStatus, Target};
use crate::observe::Observation;
use crate::plan::{Step, Waiting};

/// The change to drive now: the recorded target while it is unfinished and within
/// `spec.progressDeadlineSeconds` (a newer edit of the spec waits for it); past its deadline it
/// is marked failed and kept while the spec still asks for it, and replaced by the spec at
/// once when a person corrects it; with none recorded, what the spec asks for now.
pub fn target(cluster: &EtcdCluster, now: Timestamp) -> Target {
    let spec = &cluster.spec;
    let asked = |t: &Target| t.replicas == spec.replicas && t.version == spec.version;
    match cluster.status.as_ref().and_then(|s| s.target.clone()) {
        Some(t)
            if t.failed.is_none()
                && now.as_second() - t.started.0.as_second() < spec.progress_deadline_seconds =>
        {
            t
        }
        Some(t) if asked(&t) => Target { failed: t.failed.clone().or(Some(Time(now))), ..t },
        _ => Target {
            replicas: spec.replicas,
            version: spec.version.clone(),
            started: Time(now),
            failed: None,
        },
    }
}

/// The Event text when `new` records a change that failed and `previous` did not: once per
/// failed change.
pub fn newly_failed(
    previous: Option<&EtcdClusterStatus>,
    new: &EtcdClusterStatus,
) -> Option<String> {
    let was = previous.and_then(|s| s.target.as_ref()).is_some_and(|t| t.failed.is_some());
    let failed = new.target.as_ref().is_some_and(|t| t.failed.is_some());
    if was || !failed {
        return None;
    }
    let c = new.conditions.iter().find(|c| c.type_ == "Progressing")?;
    Some(c.message.clone())
}

/// The target to record after a reconcile: none once the cluster has reached it (the next
/// reconcile then takes the spec as it is by then).
pub fn next_target(target: Target, step: &Step) -> Option<Target> {
    (*step != Step::Done).then_some(target)
}

fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: last.unwrap_or(Time(now)),
    }
}

/// The status after observing `obs` and choosing `step`.
pub fn compute(
    cluster: &EtcdCluster,
    obs: &Observation,
    step: &Step,
    target: Option<Target>,
) -> EtcdClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let now = obs.now;
    let leader = obs.leader();
    let mut members: Vec<MemberStatus> = Vec::new();
    for m in obs.members.iter().flatten() {
        let id = format!("{:x}", m.id);
        let before = previous.members.iter().find(|r| r.id == id);
        let answer = obs.statuses.get(&m.id).map(|(_, s)| s);
        let healthy = answer.is_some_and(|s| s.leader != 0 && s.errors.is_empty());
        let ordinal = obs.ordinal_of(m);
        let volume_now =
            ordinal.and_then(|o| obs.volumes.get(&o)).and_then(|v| v.metadata.uid.clone());
        // The volume is recorded once, the first time the started member is healthy on it.
        let started = healthy && !m.name.is_empty();
        let volume_uid =
            before.and_then(|b| b.volume_uid.clone()).or(volume_now.filter(|_| started));
        members.push(MemberStatus {
            name: m.name.clone(),
            id,
            peer_url: m.peer_urls.first().cloned(),
            client_url: m.client_urls.first().cloned(),
            leader: leader.is_some_and(|(l, _)| l == m.id),
            learner: m.learner,
            healthy,
            revision: answer.map(|s| s.revision).unwrap_or(0),
            db_size: answer.map(|s| s.db_size).unwrap_or(0),
            volume_uid,
            // Defragmented in this reconcile, else as recorded; first seen counts as a start.
            last_defragment: if *step == (Step::Defragment { id: m.id }) {
                Some(Time(now))
            } else {
                Some(before.and_then(|b| b.last_defragment.clone()).unwrap_or(Time(now)))
            },
            unhealthy_since: if answer.is_some() {
                None
            } else {
                Some(before.and_then(|b| b.unhealthy_since.clone()).unwrap_or(Time(now)))
            },
        });
    }
    if obs.members.is_none() {
        // Nobody answered: keep what was known, marked unhealthy since it was last seen.
        members = previous
            .members
            .iter()
            .cloned()
            .map(|mut m| {
                m.healthy = false;
                m.leader = false;
                m.unhealthy_since.get_or_insert(Time(now));
                m
            })
            .collect();
    }
    let voters = members.iter().filter(|m| !m.learner).count();
    let ready = members.iter().filter(|m| !m.learner && m.healthy).count() as i32;
    let has_quorum = leader.is_some() && ready as usize >= crate::plan::quorum(voters.max(1));
    let generation = cluster.metadata.generation;
    let versions: Vec<String> = obs
        .pods
        .values()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(crate::resources::VERSION_LABEL).cloned())
        .collect();
    let current_version = versions
        .first()
        .filter(|v| versions.iter().all(|w| w == *v))
        .cloned()
        .or_else(|| previous.current_version.clone().filter(|_| versions.is_empty()));

    // A recovery in flight: from the step that starts it until the step that ends it,
    // whatever the steps between (volume deletions, survivor restarts).
    let recovering = match step {
        Step::ForceNewCluster { .. } | Step::FinishRecovery { .. } => true,
        Step::EndRecovery => false,
        _ => previous.recovery.is_some(),
    };
    let quorum_lost = recovering || matches!(step, Step::Wait(Waiting::QuorumLost { .. }));
    let progressing = !matches!(step, Step::Done);
    let failed = target.as_ref().filter(|t| t.failed.is_some());
    let degraded = quorum_lost || members.iter().any(|m| !m.healthy);
    let creating = obs.members.is_none() && previous.cluster_id.is_none();
    let phase = if creating || matches!(step, Step::RestartFounder { .. }) {
        "Creating"
    } else if recovering {
        "Recovering"
    } else if quorum_lost {
        "QuorumLost"
    } else if matches!(step, Step::RestartPod { .. }) {
        "Upgrading"
    } else if target.as_ref().is_some_and(|t| t.replicas as usize != members.len()) {
        "Scaling"
    } else if degraded {
        "Degraded"
    } else if matches!(step, Step::Done) {
        "Running"
    } else {
        "Reconciling"
    };
    let step_text = describe(step);
    let conditions = vec![
        condition(
            &previous.conditions,
            "Available",
            has_quorum,
            if has_quorum { "QuorumHealthy" } else { "NoQuorum" },
            format!("{ready} of {voters} voting members healthy"),
            generation,
            now,
        ),
        match failed {
            // Kubernetes' convention for a rollout past its deadline (a Deployment's).
            Some(t) => condition(
                &previous.conditions,
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                format!(
                    "the change to {} members at version {} started at {} did not finish \
                     within spec.progressDeadlineSeconds ({} s); it stays as the spec asks until \
                     the spec is corrected (membership is not changed for it). Now: {step_text}",
                    t.replicas, t.version, t.started.0, cluster.spec.progress_deadline_seconds
                ),
                generation,
                now,
            ),
            None => condition(
                &previous.conditions,
                "Progressing",
                progressing,
                if progressing { "Reconciling" } else { "Done" },
                step_text.clone(),
                generation,
                now,
            ),
        },
        condition(
            &previous.conditions,
            "Degraded",
            degraded,
            if quorum_lost {
                "QuorumLost"
            } else if degraded {
                "MemberUnhealthy"
            } else {
                "AllHealthy"
            },
            if degraded { step_text.clone() } else { "every member is healthy".into() },
            generation,
            now,
        ),
        volumes_condition(cluster, obs, &previous.conditions, generation),
    ];
    EtcdClusterStatus {
        phase: Some(phase.into()),
        conditions,
        observed_generation: generation,
        leader: leader.and_then(|(id, _)| {
            members.iter().find(|m| m.id == format!("{id:x}")).map(|m| m.name.clone())
        }),
        cluster_id: obs.cluster_id().map(|c| format!("{c:x}")).or(previous.cluster_id),
        replicas: members.len() as i32,
        ready_replicas: ready,
        ready: Some(format!("{ready}/{}", cluster.spec.replicas)),
        current_version,
        target,
        recovery: previous.recovery.clone(),
        selector: Some(obs.names.selector_string()),
        last_step: Some(step_text),
        members,
        migration: previous.migration.clone(),
    }
}

/// `VolumesResized`: whether every member volume requests `spec.storage.size` and has it
/// (`status.capacity`, set once the volume and its filesystem have grown); when not, whether
/// they are growing or their StorageClass refuses expansion (then they stay as they are until
/// a person moves the data).
fn volumes_condition(
    cluster: &EtcdCluster,
    obs: &Observation,
    previous: &[Condition],
    generation: Option<i64>,
) -> Condition {
    let wanted = crate::quantity::bytes(&cluster.spec.storage.size);
    let below = |has: Option<u64>| matches!((has, wanted), (Some(h), Some(w)) if h < w);
    let small: Vec<&PersistentVolumeClaim> = obs
        .volumes
        .values()
        .filter(|v| {
            below(crate::observe::requested_bytes(v)) || below(crate::observe::capacity_bytes(v))
        })
        .collect();
    let refused: Vec<String> = small
        .iter()
        .filter(|v| below(crate::observe::requested_bytes(v)) && !obs.expandable(v))
        .map(|v| v.name_any())
        .collect();
    let size = &cluster.spec.storage.size;
    let (ok, reason, message) = if small.is_empty() {
        (true, "AtSize", format!("every member volume has {size}"))
    } else if refused.is_empty() {
        (false, "Expanding", format!("{} volume(s) growing to {size}", small.len()))
    } else {
        let message = format!(
            "{} cannot grow to {size}: their StorageClass does not allow volume expansion",
            refused.join(", ")
        );
        (false, "ExpansionNotAllowed", message)
    };
    condition(previous, "VolumesResized", ok, reason, message, generation, obs.now)
}

/// A step in words, for status and Events.
pub fn describe(step: &Step) -> String {
    match step {
        Step::ScaleStatefulSet { replicas } => format!("StatefulSet set to {replicas} pods"),
        Step::AddLearner { ordinal } => format!("adding the member of pod {ordinal} as a learner"),
        Step::ResetOrdinal { ordinal } => format!(
            "pod {ordinal} runs as a removed member: deleting its volume and pod for a fresh start"
        ),
        Step::Promote { id } => format!("promoting learner {id:x}"),
        Step::MoveLeader { from, to } => format!("moving leadership from {from:x} to {to:x}"),
        Step::RemoveMember { id, reason } => format!("removing member {id:x} ({reason:?})"),
        Step::DeleteVolume { ordinal } => format!("deleting the volume of removed pod {ordinal}"),
        Step::RestartPod { ordinal } => format!("restarting pod {ordinal} on the new template"),
        Step::RestartFounder { ordinal } => format!(
            "restarting pod {ordinal}, which founded the cluster, without the founding flags"
        ),
        Step::ExpandVolume { ordinal } => {
            format!("growing the volume of pod {ordinal} to spec.storage.size")
        }
        Step::Defragment { id } => format!("defragmenting member {id:x}"),
        Step::ForceNewCluster { ordinal, id } => format!(
            "quorum lost for good: restarting pod {ordinal} (member {id:x}, the most advanced \
             survivor) with --force-new-cluster"
        ),
        Step::FinishRecovery { ordinal } => format!(
            "pod {ordinal} leads alone after --force-new-cluster; restarting it without the flag"
        ),
        Step::EndRecovery => "recovered from quorum loss; growing back learner-first".into(),
        Step::Wait(w) => w.to_string(),
        Step::Done => "cluster matches its spec".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::members::{Listed, Status};
    use crate::resources::tests::demo;
    use crate::resources::Names;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    /// `n` members of `demo`, member `o` has id 100 + o; `up` lists the ones that answer.
    fn observation(n: u32, leader: u64, up: &[u32], now: Timestamp) -> Observation {
        let names = Names::of(&demo());
        let members = (0..n)
            .map(|o| Listed {
                id: 100 + o as u64,
                name: names.pod(o),
                peer_urls: vec![names.peer_url(o)],
                client_urls: vec![format!("http://{}:2379", names.host(o))],
                learner: false,
            })
            .collect();
        let statuses = up
            .iter()
            .map(|o| {
                let id = 100 + *o as u64;
                let s = Status {
                    member_id: id,
                    cluster_id: 0xc1,
                    leader,
                    raft_index: 10,
                    revision: 5,
                    db_size: 4096,
                    learner: false,
                    errors: vec![],
                    version: "3.5.1".into(),
                };
                (id, (format!("http://127.0.0.{o}:2379"), s))
            })
            .collect();
        let volumes = (0..n)
            .map(|o| {
                let meta = ObjectMeta {
                    name: Some(names.volume(o)),
                    uid: Some(format!("uid-{o}")),
                    ..Default::default()
                };
                (o, PersistentVolumeClaim { metadata: meta, ..Default::default() })
            })
            .collect();
        Observation {
            names,
            sts: None,
            pods: BTreeMap::new(),
            volumes,
            statuses,
            answered_by: BTreeMap::new(),
            members: Some(members),
            expandable_classes: BTreeMap::new(),
            now,
        }
    }

    fn cond<'a>(s: &'a EtcdClusterStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_healthy_cluster_is_available_running_and_records_volumes() {
        let c = demo();
        let s = compute(&c, &observation(3, 101, &[0, 1, 2], t(0)), &Step::Done, None);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.ready.as_deref(), Some("3/3"));
        assert_eq!(s.leader.as_deref(), Some("demo-1"));
        assert_eq!(s.cluster_id.as_deref(), Some("c1"));
        assert_eq!(cond(&s, "Available").status, "True");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(cond(&s, "Progressing").status, "False");
        assert_eq!(s.members[2].volume_uid.as_deref(), Some("uid-2"));
        assert!(s.members.iter().all(|m| m.healthy && m.unhealthy_since.is_none()));
    }

    #[test]
    fn a_down_member_is_degraded_since_it_was_first_seen_down() {
        let mut c = demo();
        let first = compute(&c, &observation(3, 100, &[0, 1], t(0)), &Step::Done, None);
        assert_eq!(first.phase.as_deref(), Some("Degraded"));
        assert_eq!(cond(&first, "Degraded").status, "True");
        assert_eq!(first.members[2].unhealthy_since, Some(Time(t(0))));
        c.status = Some(first.clone());
        let later = compute(&c, &observation(3, 100, &[0, 1], t(60)), &Step::Done, None);
        // Since when, and the condition's transition time, do not move while nothing flips.
        assert_eq!(later.members[2].unhealthy_since, Some(Time(t(0))));
        assert_eq!(
            cond(&later, "Degraded").last_transition_time,
            cond(&first, "Degraded").last_transition_time
        );
    }

    #[test]
    fn a_recorded_volume_is_kept_when_the_volume_changes() {
        let mut c = demo();
        c.status = Some(compute(&c, &observation(3, 100, &[0, 1, 2], t(0)), &Step::Done, None));
        let mut obs = observation(3, 100, &[0, 1, 2], t(5));
        obs.volumes.get_mut(&2).unwrap().metadata.uid = Some("new".into());
        let s = compute(&c, &obs, &Step::Done, None);
        assert_eq!(s.members[2].volume_uid.as_deref(), Some("uid-2"));
    }

    #[test]
    fn quorum_loss_is_reported() {
        let c = demo();
        let step = Step::Wait(Waiting::QuorumLost { manual: true });
        let s = compute(&c, &observation(3, 0, &[0], t(0)), &step, None);
        assert_eq!(s.phase.as_deref(), Some("QuorumLost"));
        assert_eq!(cond(&s, "Available").status, "False");
        assert_eq!(cond(&s, "Degraded").reason, "QuorumLost");
    }

    #[test]
    fn volumes_smaller_than_the_spec_say_whether_they_can_grow() {
        let mut c = demo();
        let at_size = compute(&c, &observation(3, 100, &[0, 1, 2], t(0)), &Step::Done, None);
        assert_eq!(cond(&at_size, "VolumesResized").reason, "AtSize");
        c.spec.storage.size = "2Gi".into();
        let mut obs = observation(3, 100, &[0, 1, 2], t(0));
        for v in obs.volumes.values_mut() {
            v.spec = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
                storage_class_name: Some("fixed".into()),
                resources: Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let refused = compute(&c, &obs, &Step::Done, None);
        let cond_ = cond(&refused, "VolumesResized");
        assert_eq!(
            (cond_.status.as_str(), cond_.reason.as_str()),
            ("False", "ExpansionNotAllowed")
        );
        assert!(cond_.message.contains("data-demo-0"), "{}", cond_.message);
        obs.expandable_classes.insert("fixed".into(), true);
        let growing = compute(&c, &obs, &Step::ExpandVolume { ordinal: 0 }, None);
        assert_eq!(cond(&growing, "VolumesResized").reason, "Expanding");
        // Requested everywhere, but a volume whose capacity has not followed is still growing.
        let two = k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into());
        for v in obs.volumes.values_mut() {
            let spec = v.spec.as_mut().unwrap();
            spec.resources.as_mut().unwrap().requests =
                Some(BTreeMap::from([("storage".to_string(), two.clone())]));
            v.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
                capacity: Some(BTreeMap::from([("storage".to_string(), two.clone())])),
                ..Default::default()
            });
        }
        let one = k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into());
        let lagging = obs.volumes.get_mut(&1).unwrap().status.as_mut().unwrap();
        lagging.capacity = Some(BTreeMap::from([("storage".to_string(), one)]));
        let resizing = compute(&c, &obs, &Step::Done, None);
        let cond_ = cond(&resizing, "VolumesResized");
        assert_eq!((cond_.status.as_str(), cond_.reason.as_str()), ("False", "Expanding"));
        obs.volumes.get_mut(&1).unwrap().status.as_mut().unwrap().capacity =
            Some(BTreeMap::from([("storage".to_string(), two)]));
        let grown = compute(&c, &obs, &Step::Done, None);
        assert_eq!(cond(&grown, "VolumesResized").status, "True");
    }

    #[test]
    fn a_recovery_is_reported_from_its_first_step_to_its_last() {
        let mut c = demo();
        let start = Step::ForceNewCluster { ordinal: 2, id: 102 };
        let s = compute(&c, &observation(3, 0, &[2], t(0)), &start, None);
        assert_eq!(s.phase.as_deref(), Some("Recovering"));
        assert_eq!(cond(&s, "Degraded").reason, "QuorumLost");
        c.status = Some(EtcdClusterStatus {
            recovery: Some(crate::crd::Recovery {
                ordinal: 2,
                member_id: "66".into(),
                restarting: false,
                started: Time(t(0)),
            }),
            ..s
        });
        for step in [Step::DeleteVolume { ordinal: 0 }, Step::RestartPod { ordinal: 2 }] {
            let s = compute(&c, &observation(1, 102, &[2], t(5)), &step, None);
            assert_eq!(s.phase.as_deref(), Some("Recovering"), "{step:?}");
        }
        let s = compute(&c, &observation(1, 102, &[2], t(9)), &Step::EndRecovery, None);
        assert_ne!(s.phase.as_deref(), Some("Recovering"));
    }

    #[test]
    fn a_target_stays_locked_until_done_or_past_its_deadline() {
        let mut c = demo();
        let first = target(&c, t(0));
        assert_eq!(first.replicas, 3);
        c.status = Some(EtcdClusterStatus { target: Some(first.clone()), ..Default::default() });
        c.spec.replicas = 5;
        assert_eq!(target(&c, t(10)), first, "an edit mid-change waits");
        let deadline = c.spec.progress_deadline_seconds;
        assert_eq!(target(&c, t(deadline + 1)).replicas, 5, "a newer edit past the deadline");
        assert_eq!(target(&c, t(deadline + 1)).failed, None);
        assert_eq!(next_target(first.clone(), &Step::Done), None);
        assert_eq!(next_target(first.clone(), &Step::Promote { id: 1 }), Some(first));
    }

    #[test]
    fn a_change_past_its_deadline_is_reported_failed_once_until_the_spec_is_corrected() {
        let mut c = demo();
        c.spec.progress_deadline_seconds = 30;
        c.spec.version = "bad".into();
        let first = target(&c, t(0));
        let obs = observation(3, 100, &[0, 1], t(31));
        let step = Step::Wait(Waiting::Unhealthy);
        let before = compute(&c, &obs, &step, Some(first.clone()));
        assert_eq!(cond(&before, "Progressing").reason, "Reconciling");
        c.status = Some(before.clone());
        // Past the deadline with the spec unchanged: the same change, marked failed.
        let failed = target(&c, t(31));
        assert_eq!((failed.version.as_str(), failed.started.clone()), ("bad", first.started));
        assert_eq!(failed.failed, Some(Time(t(31))));
        let s = compute(&c, &obs, &step, Some(failed.clone()));
        let p = cond(&s, "Progressing");
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("False", "ProgressDeadlineExceeded"));
        assert!(p.message.contains("version bad"), "{}", p.message);
        assert_eq!(newly_failed(c.status.as_ref(), &s).as_deref(), Some(p.message.as_str()));
        // Reported once; the failure time stays.
        c.status = Some(s.clone());
        assert_eq!(newly_failed(c.status.as_ref(), &s), None);
        assert_eq!(target(&c, t(90)).failed, Some(Time(t(31))));
        // A corrected spec is a new change at once.
        c.spec.version = "good".into();
        let next = target(&c, t(95));
        assert_eq!((next.version.as_str(), next.failed.clone()), ("good", None));
        assert_eq!(next.started, Time(t(95)));
        let s = compute(&c, &obs, &step, Some(next));
        assert_eq!(cond(&s, "Progressing").reason, "Reconciling");
    }
}
