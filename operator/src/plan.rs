//! The planner: from what the operator observed (objects and the cluster's own member list and
//! member statuses) to the ONE next safe step. Pure: no I/O, no clock (the time is an input),
//! no memory between calls, so every case is a table test and a restarted operator plans
//! exactly as the one before it.
//!
//! Safety rules it keeps: one membership change at a time; members join as learners and are
//! promoted once in sync; a voter is removed only when the remaining healthy voters still form
//! a quorum, and never while it leads (leadership is moved first); pods are restarted one at a
//! time, the leader last, only while every voter is healthy; quorum-loss recovery only when
//! the policy allows it and a majority is permanently gone; no pod keeps the founding flags
//! once a second member joins; a pod's data is wiped only when its log is no longer than the
//! leader's.

use std::fmt;

/// A member's raft progress is "in sync" when it has this share of the leader's log (etcd
/// promotes learners at 90%).
const IN_SYNC_RATIO: f64 = 0.9;

/// The least time an added learner gets to start before it is dropped and added again.
const LEARNER_START_GRACE_SECS: i64 = 300;

/// What the change in flight wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Members wanted.
    pub replicas: u32,
    /// `spec.recovery.quorumLoss == Auto`.
    pub auto_recover: bool,
    /// `spec.recovery.memberLostAfterSeconds`.
    pub member_lost_after_secs: Option<i64>,
    /// `spec.storage.removedMemberPolicy == Delete`.
    pub delete_removed_volumes: bool,
    /// `spec.maintenance.defragmentEveryMinutes`, in seconds.
    pub defragment_every_secs: Option<i64>,
    /// `spec.storage.size` in bytes (None: not a quantity the operator can compare).
    pub volume_bytes: Option<u64>,
}

/// One pod of the StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodObs {
    /// Its ordinal (`<cluster>-<ordinal>`).
    pub ordinal: u32,
    /// Whether its container is running (it may still be unready).
    pub running: bool,
    /// Whether it is being deleted.
    pub terminating: bool,
    /// Whether it was created from the StatefulSet's current template.
    pub current_template: bool,
    /// The member id its process reports, if it answers (a pod answering with an id the
    /// cluster does not list runs on a volume of a removed member).
    pub member_id: Option<u64>,
    /// The last raft index its process reports, if it answers.
    pub raft_index: Option<u64>,
    /// Whether it runs the founding flags (`--initial-cluster-state=new`): a pod keeps the
    /// flags it was created with through container restarts, and a founder whose volume is
    /// emptied would found a second cluster under the same member and cluster ids.
    pub founding: bool,
}

/// One member volume (`data-<cluster>-<ordinal>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeObs {
    /// Ordinal of the pod it belongs to.
    pub ordinal: u32,
    /// Its UID: a new UID for the same name means the data is new.
    pub uid: String,
    /// Whether it is being deleted.
    pub terminating: bool,
    /// The storage it requests, in bytes (None: unknown).
    pub requested_bytes: Option<u64>,
    /// Whether its StorageClass allows growing it (`allowVolumeExpansion`).
    pub expandable: bool,
}

/// A member's own answer to a status call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// The leader it follows (0 = none).
    pub leader: u64,
    /// Its last raft log index.
    pub raft_index: u64,
    /// Its revision.
    pub revision: i64,
    /// Alarms or errors it reports.
    pub errors: Vec<String>,
}

/// One member as the cluster lists it, joined with what the operator knows of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberObs {
    /// Member id.
    pub id: u64,
    /// Name; empty until the member has started once.
    pub name: String,
    /// Ordinal of the pod it belongs to, from its peer URL (None: not one of ours).
    pub ordinal: Option<u32>,
    /// Whether it is a learner.
    pub learner: bool,
    /// Its status answer; None when unreachable.
    pub health: Option<Health>,
    /// The volume UID it was first seen healthy on (from status).
    pub recorded_volume: Option<String>,
    /// Seconds it has been unreachable (from status), 0 if reachable.
    pub unhealthy_secs: i64,
    /// Seconds since its last defragmentation (from status; 0 if never recorded).
    pub since_defragment_secs: i64,
}

impl MemberObs {
    fn healthy(&self) -> bool {
        self.health.as_ref().is_some_and(|h| h.leader != 0 && h.errors.is_empty())
    }
}

/// Everything the planner looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Whether the cluster was ever bootstrapped (its cluster id is in status).
    pub bootstrapped: bool,
    /// The StatefulSet's replicas; None when it does not exist.
    pub sts_replicas: Option<u32>,
    /// The StatefulSet's pods.
    pub pods: Vec<PodObs>,
    /// The member volumes.
    pub volumes: Vec<VolumeObs>,
    /// The member list; None when no member answered.
    pub members: Option<Vec<MemberObs>>,
    /// A quorum-loss recovery in flight.
    pub recovering: Option<Recovering>,
}

/// A quorum-loss recovery in flight (from status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovering {
    /// The survivor's ordinal.
    pub ordinal: u32,
    /// The survivor's member id.
    pub id: u64,
    /// Second stage: restarting without `--force-new-cluster`.
    pub restarting: bool,
}

/// The one next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Apply the StatefulSet with this many replicas (creates it, bootstraps, or lets an
    /// added member's pod start).
    ScaleStatefulSet {
        /// New replicas.
        replicas: u32,
    },
    /// `member add --learner` for this ordinal's peer URL.
    AddLearner {
        /// Ordinal of the new member's pod.
        ordinal: u32,
    },
    /// Delete an ordinal's volume and pod: its process runs as a member the cluster no longer
    /// lists. Done before any member add for that ordinal, never after: a learner whose log
    /// went back to empty makes the leader's raft stop (openraft refuses log reversion).
    ResetOrdinal {
        /// The ordinal.
        ordinal: u32,
    },
    /// `member promote`.
    Promote {
        /// Member id.
        id: u64,
    },
    /// `move-leader` from the leader to `to`.
    MoveLeader {
        /// The current leader.
        from: u64,
        /// A healthy, in-sync voter.
        to: u64,
    },
    /// `member remove`.
    RemoveMember {
        /// Member id.
        id: u64,
        /// Why (for the Event).
        reason: RemoveReason,
    },
    /// Delete a volume that no member uses.
    DeleteVolume {
        /// Its ordinal.
        ordinal: u32,
    },
    /// Defragment one member's database.
    Defragment {
        /// Member id.
        id: u64,
    },
    /// Raise a member volume's requested size to `spec.storage.size` (its StorageClass allows
    /// expansion; the volume grows online).
    ExpandVolume {
        /// Its ordinal.
        ordinal: u32,
    },
    /// Delete a pod so the StatefulSet recreates it from the current template.
    RestartPod {
        /// Its ordinal.
        ordinal: u32,
    },
    /// Delete the founding pod while it is the only member, so the StatefulSet recreates it
    /// without the founding flags before anyone joins.
    RestartFounder {
        /// Its ordinal.
        ordinal: u32,
    },
    /// Restart the most advanced survivor with `--force-new-cluster`.
    ForceNewCluster {
        /// The survivor's ordinal.
        ordinal: u32,
        /// Its member id.
        id: u64,
    },
    /// The survivor leads a one-member cluster: switch back to the normal template (the
    /// survivor then restarts without `--force-new-cluster`).
    FinishRecovery {
        /// The survivor's ordinal.
        ordinal: u32,
    },
    /// The survivor runs the normal template and leads: recovery is over; the cluster grows
    /// back learner-first.
    EndRecovery,
    /// Nothing is safe or needed now; why.
    Wait(Waiting),
    /// Everything matches the target and every member is healthy.
    Done,
}

/// Why a member is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveReason {
    /// Scale-down.
    ScaleDown,
    /// Its volume is gone or new: the member's data is lost.
    DataLost,
    /// Unreachable for longer than `recovery.memberLostAfterSeconds`.
    Lost,
}

/// Why the planner waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// The first member has not answered yet.
    FirstMember,
    /// No member answers.
    NoMemberAnswers,
    /// Voters are electing a leader.
    NoLeader,
    /// A majority is down; it may come back (or policy is Manual).
    QuorumLost {
        /// Whether the policy forbids automatic recovery.
        manual: bool,
    },
    /// An added learner's pod has not started yet.
    LearnerStarting(u32),
    /// A learner is catching up.
    LearnerCatchingUp(u64),
    /// A step would lose quorum while some members are unhealthy.
    Unhealthy,
    /// A pod is being deleted or restarted.
    PodsSettling,
    /// The survivor is restarting with `--force-new-cluster`.
    Recovering(u32),
    /// A pod answers as a member the cluster does not list, with a longer raft log than the
    /// leader's: it is not a removed member of this cluster (whose log stops at its removal),
    /// so its data is never wiped automatically.
    AheadOfLeader(u32),
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::FirstMember => write!(f, "waiting for the first member to start"),
            Waiting::NoMemberAnswers => write!(f, "no member answers"),
            Waiting::NoLeader => write!(f, "waiting for a leader to be elected"),
            Waiting::QuorumLost { manual: true } => write!(
                f,
                "quorum lost for good and recovery.quorumLoss is Manual: nothing is rebuilt. \
                 Bring the lost members back with their volumes, or let the operator rebuild \
                 from the most advanced survivor (every write it has is kept, later ones on the \
                 lost members are not): set spec.recovery.quorumLoss to Auto, e.g. kubectl \
                 patch etcdcluster <name> --type merge -p \
                 '{{\"spec\":{{\"recovery\":{{\"quorumLoss\":\"Auto\"}}}}}}'"
            ),
            Waiting::QuorumLost { manual: false } => {
                write!(f, "quorum lost; waiting for members that may come back")
            }
            Waiting::LearnerStarting(o) => write!(f, "waiting for the learner of pod {o} to start"),
            Waiting::LearnerCatchingUp(id) => write!(f, "learner {id:x} is catching up"),
            Waiting::Unhealthy => write!(f, "waiting for every member to be healthy"),
            Waiting::PodsSettling => write!(f, "waiting for pods to settle"),
            Waiting::Recovering(o) => {
                write!(f, "waiting for pod {o} to lead alone after --force-new-cluster")
            }
            Waiting::AheadOfLeader(o) => write!(
                f,
                "pod {o} runs as a member this cluster does not list, with more raft log than \
                 the leader: its data is kept; a person must decide"
            ),
        }
    }
}

/// Raft's quorum of `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// The one next safe step from `obs` towards `want`.
pub fn plan(want: &Desired, obs: &Observed) -> Step {
    if let Some(r) = obs.recovering {
        return recovery(obs, r);
    }
    let Some(sts_replicas) = obs.sts_replicas else {
        // No StatefulSet: a new cluster starts from one member and grows learner-first; an
        // existing one (StatefulSet deleted) gets back the pods of its known members.
        let replicas = match &obs.members {
            Some(m) if obs.bootstrapped => max_ordinal(m).map(|o| o + 1).unwrap_or(1),
            _ => 1,
        };
        return Step::ScaleStatefulSet { replicas };
    };
    let Some(members) = &obs.members else {
        if !obs.bootstrapped {
            if sts_replicas == 0 {
                return Step::ScaleStatefulSet { replicas: 1 };
            }
            return Step::Wait(Waiting::FirstMember);
        }
        return Step::Wait(Waiting::NoMemberAnswers);
    };

    let voters: Vec<&MemberObs> = members.iter().filter(|m| !m.learner).collect();
    let healthy_voters = voters.iter().filter(|m| m.healthy()).count();
    let leader = members.iter().find(|m| m.health.as_ref().is_some_and(|h| h.leader == m.id));

    // 1. No leader: an election in progress, or quorum lost.
    let Some(leader) = leader else {
        let reachable = voters.iter().filter(|m| m.health.is_some()).count();
        if reachable >= quorum(voters.len()) {
            return Step::Wait(Waiting::NoLeader);
        }
        return quorum_loss(want, obs, &voters);
    };
    let leader_index = leader.health.as_ref().map(|h| h.raft_index).unwrap_or(0);
    let in_sync = |m: &MemberObs| {
        m.health.as_ref().is_some_and(|h| {
            h.errors.is_empty() && h.raft_index as f64 >= leader_index as f64 * IN_SYNC_RATIO
        })
    };
    // Whether removing `m` leaves a healthy quorum of the remaining voters.
    let can_remove = |m: &MemberObs| {
        if m.learner {
            return true;
        }
        let remaining = voters.len() - 1;
        let healthy_left = healthy_voters - usize::from(m.healthy());
        remaining > 0 && healthy_left >= quorum(remaining)
    };
    // Moves leadership off `m` to the most advanced other healthy voter.
    let move_off = |m: &MemberObs| -> Option<Step> {
        voters
            .iter()
            .filter(|v| v.id != m.id && v.healthy() && in_sync(v))
            .max_by_key(|v| (v.health.as_ref().map(|h| h.raft_index), std::cmp::Reverse(v.id)))
            .map(|v| Step::MoveLeader { from: m.id, to: v.id })
    };
    let remove = |m: &MemberObs, reason: RemoveReason| -> Option<Step> {
        if m.id == leader.id {
            return move_off(m);
        }
        can_remove(m).then_some(Step::RemoveMember { id: m.id, reason })
    };
    let volume = |ordinal: u32| obs.volumes.iter().find(|v| v.ordinal == ordinal);
    let pod = |ordinal: u32| obs.pods.iter().find(|p| p.ordinal == ordinal);

    // 2. The founding pod keeps `--initial-cluster-state=new` through container restarts until
    //    it is recreated: restarted on an emptied volume it would found a second cluster under
    //    the same member and cluster ids, whose leader the other members follow (its higher
    //    term wins) and whose empty member list makes them look removed. It is recreated on the
    //    normal template while it is alone, before anyone joins (later, the rolling restart of
    //    step 9 does it).
    if members.len() == 1 {
        if let Some(p) = leader.ordinal.and_then(pod).filter(|p| p.founding) {
            if p.terminating {
                return Step::Wait(Waiting::PodsSettling);
            }
            return Step::RestartFounder { ordinal: p.ordinal };
        }
    }

    // 3. Learners: start them, then promote them once in sync (one at a time, as etcd allows).
    if let Some(l) = members.iter().find(|m| m.learner) {
        if l.name.is_empty() || l.health.is_none() {
            if let Some(o) = l.ordinal {
                if o >= sts_replicas {
                    return Step::ScaleStatefulSet { replicas: o + 1 };
                }
            }
            // A learner's pod may take a while (image pull, crash-loop back-off before the
            // add): it gets at least LEARNER_START_GRACE_SECS.
            let grace = lost_after(want).max(LEARNER_START_GRACE_SECS);
            if l.ordinal.is_none() || l.unhealthy_secs < grace {
                return Step::Wait(Waiting::LearnerStarting(l.ordinal.unwrap_or(u32::MAX)));
            }
            // A learner that never comes up holds the one learner slot: drop it.
            return Step::RemoveMember { id: l.id, reason: RemoveReason::Lost };
        }
        if !in_sync(l) {
            return Step::Wait(Waiting::LearnerCatchingUp(l.id));
        }
        // Promoting adds a voter that must be counted in the new quorum: only while enough
        // voters are healthy that the promoted member plus them still form one.
        if healthy_voters + 1 >= quorum(voters.len() + 1) {
            return Step::Promote { id: l.id };
        }
        return Step::Wait(Waiting::Unhealthy);
    }

    // 4. Members whose data is gone (volume missing, being deleted or replaced), then members
    //    lost for longer than the policy allows: remove them (they are re-added below).
    for m in &voters {
        let Some(o) = m.ordinal else { continue };
        let Some(recorded) = &m.recorded_volume else { continue };
        let gone = match volume(o) {
            None => true,
            Some(v) => v.terminating || &v.uid != recorded,
        };
        if gone {
            return remove(m, RemoveReason::DataLost).unwrap_or(Step::Wait(Waiting::Unhealthy));
        }
    }
    if want.member_lost_after_secs.is_some() {
        for m in &voters {
            if m.health.is_none() && m.unhealthy_secs >= lost_after(want) {
                if let Some(step) = remove(m, RemoveReason::Lost) {
                    return step;
                }
            }
        }
    }

    // 5. An ordinal inside the StatefulSet without a member (its member was removed): a
    //    fresh learner for it, once its pod no longer runs as a removed member.
    let member_of = |o: u32| members.iter().find(|m| m.ordinal == Some(o));
    let join = |o: u32| -> Step {
        match pod(o) {
            Some(p) if p.terminating => Step::Wait(Waiting::PodsSettling),
            Some(p) if p.member_id.is_some_and(|id| members.iter().all(|m| m.id != id)) => {
                if p.raft_index.is_some_and(|i| i > leader_index) {
                    return Step::Wait(Waiting::AheadOfLeader(o));
                }
                Step::ResetOrdinal { ordinal: o }
            }
            _ => Step::AddLearner { ordinal: o },
        }
    };
    let count = members.len() as u32;
    for o in 0..sts_replicas {
        if member_of(o).is_none() && (o < want.replicas || o < count) {
            return join(o);
        }
    }

    // 6. Scale.
    if want.replicas > count {
        let o = (0..).find(|o| member_of(*o).is_none()).unwrap_or(count);
        if o >= sts_replicas && volume(o).is_some() {
            // A volume left by an earlier scale-down (policy Retain): its data belongs to a
            // member that no longer exists.
            return Step::DeleteVolume { ordinal: o };
        }
        return join(o);
    }
    if want.replicas < count {
        let victim = members.iter().filter(|m| m.ordinal.is_some()).max_by_key(|m| m.ordinal);
        if let Some(m) = victim {
            return remove(m, RemoveReason::ScaleDown).unwrap_or(Step::Wait(Waiting::Unhealthy));
        }
    }

    // 7. Shrink the StatefulSet to the members, then apply the volume policy.
    let needed = max_ordinal(members).map(|o| o + 1).unwrap_or(0);
    if sts_replicas > needed {
        return Step::ScaleStatefulSet { replicas: needed };
    }
    if want.delete_removed_volumes {
        if let Some(v) = obs
            .volumes
            .iter()
            .find(|v| v.ordinal >= sts_replicas && !v.terminating && pod(v.ordinal).is_none())
        {
            return Step::DeleteVolume { ordinal: v.ordinal };
        }
    }

    // 8. Volumes smaller than spec.storage.size grow, one per step, where their class allows
    //    (the others stay as they are; status says why).
    let grows = |v: &&VolumeObs| {
        needs_expansion(want, v) && v.expandable && v.ordinal < sts_replicas && !v.terminating
    };
    if let Some(v) = obs.volumes.iter().find(grows) {
        return Step::ExpandVolume { ordinal: v.ordinal };
    }

    // 9. Rolling restart onto the current template (and off the founding flags), one pod at a
    //    time, the leader last, only while every voter is healthy.
    if obs.pods.iter().any(|p| p.terminating) {
        return Step::Wait(Waiting::PodsSettling);
    }
    let all_healthy = members.iter().all(|m| m.healthy());
    let stale: Vec<&PodObs> =
        obs.pods.iter().filter(|p| !p.current_template || p.founding).collect();
    if !stale.is_empty() {
        if !all_healthy {
            // The one member down runs on a stale pod (e.g. an upgrade to an image that cannot
            // run, then corrected): replacing that pod takes away nothing that serves, and it
            // is the only way the member can come back.
            let down: Vec<&MemberObs> = members.iter().filter(|m| !m.healthy()).collect();
            if let [m] = down[..] {
                if let Some(p) = stale.iter().find(|p| m.ordinal == Some(p.ordinal)) {
                    return Step::RestartPod { ordinal: p.ordinal };
                }
            }
            return Step::Wait(Waiting::Unhealthy);
        }
        let leader_ordinal = leader.ordinal;
        if let Some(p) =
            stale.iter().filter(|p| Some(p.ordinal) != leader_ordinal).max_by_key(|p| p.ordinal)
        {
            return Step::RestartPod { ordinal: p.ordinal };
        }
        // Only the leader is left: hand leadership over first; a lone member cannot.
        if voters.len() == 1 {
            if let Some(o) = leader_ordinal {
                return Step::RestartPod { ordinal: o };
            }
        }
        return move_off(leader).unwrap_or(Step::Wait(Waiting::Unhealthy));
    }
    if !all_healthy {
        return Step::Wait(Waiting::Unhealthy);
    }

    // 10. Scheduled defragmentation, one member per step, the leader last.
    if let Some(every) = want.defragment_every_secs {
        let due: Vec<&MemberObs> =
            members.iter().filter(|m| m.since_defragment_secs >= every).collect();
        if let Some(m) = due.iter().filter(|m| m.id != leader.id).max_by_key(|m| m.ordinal) {
            return Step::Defragment { id: m.id };
        }
        if due.iter().any(|m| m.id == leader.id) {
            return Step::Defragment { id: leader.id };
        }
    }
    Step::Done
}

/// While a recovery is recorded: delete the lost members' volumes, restart the survivor onto
/// the `--force-new-cluster` template (the StatefulSet then runs only its pod), wait until it
/// leads a cluster of itself alone, then restart it once more on the normal template and end.
fn recovery(obs: &Observed, r: Recovering) -> Step {
    let alone = obs.members.as_ref().is_some_and(|ms| {
        let voters: Vec<&MemberObs> = ms.iter().filter(|m| !m.learner).collect();
        voters.len() == 1
            && voters[0].id == r.id
            && voters[0].health.as_ref().is_some_and(|h| h.leader == r.id)
    });
    let ordinal = r.ordinal;
    // The lost members' volumes go first, and are gone before the StatefulSet grows back:
    // they hold the old membership, and pods started on them would re-form the old majority
    // around the survivor (or hand a joining member its old id).
    if !r.restarting {
        let mut others = obs.volumes.iter().filter(|v| v.ordinal != ordinal);
        if let Some(v) = others.clone().find(|v| !v.terminating) {
            return Step::DeleteVolume { ordinal: v.ordinal };
        }
        if others.next().is_some() {
            return Step::Wait(Waiting::Recovering(ordinal));
        }
    }
    match obs.pods.iter().find(|p| p.ordinal == ordinal) {
        Some(p) if !p.current_template && !p.terminating => Step::RestartPod { ordinal },
        Some(p) if p.current_template && alone && !r.restarting => Step::FinishRecovery { ordinal },
        Some(p) if p.current_template && alone => Step::EndRecovery,
        _ => Step::Wait(Waiting::Recovering(ordinal)),
    }
}

/// Whether a volume requests less than `spec.storage.size` (a size the operator cannot read
/// is never grown).
pub fn needs_expansion(want: &Desired, v: &VolumeObs) -> bool {
    matches!((v.requested_bytes, want.volume_bytes), (Some(has), Some(wanted)) if has < wanted)
}

fn lost_after(want: &Desired) -> i64 {
    want.member_lost_after_secs.unwrap_or(i64::MAX)
}

fn max_ordinal(members: &[MemberObs]) -> Option<u32> {
    members.iter().filter_map(|m| m.ordinal).max()
}

/// Quorum is lost: recover from the most advanced survivor if the policy allows and a
/// majority of the voters is permanently gone (data lost, or down past the policy's limit);
/// otherwise wait for members that may still come back.
fn quorum_loss(want: &Desired, obs: &Observed, voters: &[&MemberObs]) -> Step {
    let volume = |o: u32| obs.volumes.iter().find(|v| v.ordinal == o);
    let permanently_gone = |m: &MemberObs| {
        if m.health.is_some() {
            return false;
        }
        let data_gone = match (m.ordinal, &m.recorded_volume) {
            (Some(o), Some(recorded)) => match volume(o) {
                None => true,
                Some(v) => v.terminating || &v.uid != recorded,
            },
            _ => false,
        };
        data_gone || m.unhealthy_secs >= lost_after(want)
    };
    let gone = voters.iter().filter(|m| permanently_gone(m)).count();
    let could_return = voters.len() - gone;
    if could_return >= quorum(voters.len()) {
        return Step::Wait(Waiting::QuorumLost { manual: false });
    }
    if !want.auto_recover {
        return Step::Wait(Waiting::QuorumLost { manual: true });
    }
    let survivor = voters
        .iter()
        .filter(|m| m.ordinal.is_some())
        .filter_map(|m| m.health.as_ref().map(|h| (m, h)))
        .max_by_key(|(m, h)| (h.raft_index, h.revision, std::cmp::Reverse(m.ordinal)));
    match survivor {
        Some((m, _)) => Step::ForceNewCluster { ordinal: m.ordinal.unwrap_or(0), id: m.id },
        None => Step::Wait(Waiting::QuorumLost { manual: false }),
    }
}

#[cfg(test)]
mod tests;
