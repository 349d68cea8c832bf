//! One test per situation the planner must handle, including ones the rig cannot produce.

use super::*;

const LEADER_INDEX: u64 = 1000;

fn want(replicas: u32) -> Desired {
    Desired {
        replicas,
        auto_recover: true,
        member_lost_after_secs: None,
        delete_removed_volumes: true,
        defragment_every_secs: None,
        volume_bytes: Some(GI),
    }
}

const GI: u64 = 1 << 30;

/// Member of ordinal `o` (id 100 + o), a started, healthy voter following `leader`'s ordinal.
fn member(o: u32, leader: u32) -> MemberObs {
    MemberObs {
        id: 100 + o as u64,
        name: format!("c-{o}"),
        ordinal: Some(o),
        learner: false,
        health: Some(Health {
            leader: 100 + leader as u64,
            raft_index: LEADER_INDEX,
            revision: 50,
            errors: vec![],
        }),
        recorded_volume: Some(format!("uid-{o}")),
        unhealthy_secs: 0,
        since_defragment_secs: 0,
    }
}

fn down(mut m: MemberObs, secs: i64) -> MemberObs {
    m.health = None;
    m.unhealthy_secs = secs;
    m
}

fn learner(o: u32, leader: u32, started: bool, raft_index: u64) -> MemberObs {
    let mut m = member(o, leader);
    m.learner = true;
    m.recorded_volume = None;
    if started {
        m.health.as_mut().unwrap().raft_index = raft_index;
    } else {
        m.name.clear();
        m.health = None;
    }
    m
}

fn pod(o: u32) -> PodObs {
    PodObs {
        ordinal: o,
        running: true,
        terminating: false,
        current_template: true,
        member_id: None,
        raft_index: None,
        founding: false,
    }
}

fn vol(o: u32) -> VolumeObs {
    VolumeObs {
        ordinal: o,
        uid: format!("uid-{o}"),
        terminating: false,
        requested_bytes: Some(GI),
        expandable: false,
    }
}

/// A bootstrapped cluster: `n` healthy voters (ordinals 0..n), leader `leader`, StatefulSet
/// of `n`, pods and volumes for each.
fn cluster(n: u32, leader: u32) -> Observed {
    Observed {
        bootstrapped: true,
        sts_replicas: Some(n),
        pods: (0..n).map(pod).collect(),
        volumes: (0..n).map(vol).collect(),
        members: Some((0..n).map(|o| member(o, leader)).collect()),
        recovering: None,
    }
}

fn members(obs: &mut Observed) -> &mut Vec<MemberObs> {
    obs.members.as_mut().unwrap()
}

#[test]
fn a_new_cluster_starts_with_one_member() {
    assert_eq!(plan(&want(3), &Observed::default()), Step::ScaleStatefulSet { replicas: 1 });
}

#[test]
fn bootstrap_waits_for_the_first_member() {
    let obs = Observed { sts_replicas: Some(1), pods: vec![pod(0)], ..Default::default() };
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::FirstMember));
}

#[test]
fn a_deleted_statefulset_is_recreated_for_the_known_members() {
    let mut obs = cluster(3, 0);
    obs.sts_replicas = None;
    obs.pods.clear();
    assert_eq!(plan(&want(3), &obs), Step::ScaleStatefulSet { replicas: 3 });
}

#[test]
fn a_healthy_cluster_at_its_size_is_done() {
    assert_eq!(plan(&want(3), &cluster(3, 0)), Step::Done);
}

#[test]
fn scale_up_adds_a_learner_before_its_pod_exists() {
    assert_eq!(plan(&want(3), &cluster(1, 0)), Step::AddLearner { ordinal: 1 });
}

#[test]
fn an_added_learner_gets_its_pod() {
    let mut obs = cluster(1, 0);
    members(&mut obs).push(learner(1, 0, false, 0));
    assert_eq!(plan(&want(3), &obs), Step::ScaleStatefulSet { replicas: 2 });
}

#[test]
fn a_starting_learner_is_waited_for() {
    let mut obs = cluster(2, 0);
    obs.members.as_mut().unwrap()[1] = learner(1, 0, false, 0);
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::LearnerStarting(1)));
}

#[test]
fn a_lagging_learner_is_not_promoted() {
    let mut obs = cluster(2, 0);
    members(&mut obs)[1] = learner(1, 0, true, LEADER_INDEX / 2);
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::LearnerCatchingUp(101)));
}

#[test]
fn an_in_sync_learner_is_promoted() {
    let mut obs = cluster(2, 0);
    members(&mut obs)[1] = learner(1, 0, true, LEADER_INDEX);
    assert_eq!(plan(&want(3), &obs), Step::Promote { id: 101 });
}

#[test]
fn promotion_waits_when_it_would_enlarge_an_unhealthy_quorum() {
    // 3 voters, 1 healthy: a fourth voter needs 3 healthy for quorum; 1 + the learner is 2.
    let mut obs = cluster(4, 0);
    members(&mut obs)[1] = down(member(1, 0), 5);
    members(&mut obs)[2] = down(member(2, 0), 5);
    members(&mut obs)[3] = learner(3, 0, true, LEADER_INDEX);
    assert_eq!(plan(&want(4), &obs), Step::Wait(Waiting::Unhealthy));
}

#[test]
fn scale_up_continues_to_five_one_member_at_a_time() {
    assert_eq!(plan(&want(5), &cluster(3, 1)), Step::AddLearner { ordinal: 3 });
    assert_eq!(plan(&want(5), &cluster(4, 1)), Step::AddLearner { ordinal: 4 });
    assert_eq!(plan(&want(5), &cluster(5, 1)), Step::Done);
}

#[test]
fn scale_down_removes_the_highest_ordinal() {
    assert_eq!(
        plan(&want(3), &cluster(5, 0)),
        Step::RemoveMember { id: 104, reason: RemoveReason::ScaleDown }
    );
}

#[test]
fn scale_down_moves_leadership_off_the_member_first() {
    assert_eq!(plan(&want(3), &cluster(5, 4)), Step::MoveLeader { from: 104, to: 100 });
}

#[test]
fn scale_down_never_loses_quorum() {
    // 3 voters, ordinal 1 down: removing healthy ordinal 2 would leave 1 healthy of 2.
    let mut obs = cluster(3, 0);
    members(&mut obs)[1] = down(member(1, 0), 5);
    assert_eq!(plan(&want(2), &obs), Step::Wait(Waiting::Unhealthy));
}

#[test]
fn scale_down_may_remove_an_unhealthy_member() {
    let mut obs = cluster(3, 0);
    members(&mut obs)[2] = down(member(2, 0), 5);
    assert_eq!(
        plan(&want(2), &obs),
        Step::RemoveMember { id: 102, reason: RemoveReason::ScaleDown }
    );
}

#[test]
fn after_a_removal_the_statefulset_shrinks() {
    let mut obs = cluster(3, 0);
    members(&mut obs).pop();
    assert_eq!(plan(&want(2), &obs), Step::ScaleStatefulSet { replicas: 2 });
}

#[test]
fn after_the_shrink_the_removed_volume_follows_the_policy() {
    let mut obs = cluster(3, 0);
    members(&mut obs).pop();
    obs.sts_replicas = Some(2);
    obs.pods.pop();
    assert_eq!(plan(&want(2), &obs), Step::DeleteVolume { ordinal: 2 });
    let keep = Desired { delete_removed_volumes: false, ..want(2) };
    assert_eq!(plan(&keep, &obs), Step::Done);
}

#[test]
fn the_volume_waits_for_its_pod_to_go() {
    let mut obs = cluster(3, 0);
    members(&mut obs).pop();
    obs.sts_replicas = Some(2);
    obs.pods[2].terminating = true;
    assert_eq!(plan(&want(2), &obs), Step::Wait(Waiting::PodsSettling));
}

#[test]
fn a_retained_stale_volume_is_deleted_before_its_ordinal_is_reused() {
    let mut obs = cluster(2, 0);
    obs.volumes.push(VolumeObs { uid: "old".into(), ..vol(2) });
    assert_eq!(plan(&want(3), &obs), Step::DeleteVolume { ordinal: 2 });
}

#[test]
fn a_member_whose_volume_was_replaced_is_removed() {
    let mut obs = cluster(3, 0);
    obs.volumes[2].uid = "fresh".into();
    assert_eq!(
        plan(&want(3), &obs),
        Step::RemoveMember { id: 102, reason: RemoveReason::DataLost }
    );
}

#[test]
fn a_leader_whose_volume_is_gone_hands_over_first() {
    let mut obs = cluster(3, 2);
    obs.volumes[2].terminating = true;
    assert_eq!(plan(&want(3), &obs), Step::MoveLeader { from: 102, to: 100 });
}

#[test]
fn a_removed_members_ordinal_gets_a_fresh_learner_and_volume() {
    let mut obs = cluster(3, 0);
    members(&mut obs).pop();
    assert_eq!(plan(&want(3), &obs), Step::AddLearner { ordinal: 2 });
}

#[test]
fn a_member_down_past_the_policy_is_replaced() {
    let mut obs = cluster(3, 0);
    members(&mut obs)[1] = down(member(1, 0), 400);
    let policy = Desired { member_lost_after_secs: Some(300), ..want(3) };
    assert_eq!(plan(&policy, &obs), Step::RemoveMember { id: 101, reason: RemoveReason::Lost });
    // Without the policy a down member is only waited for.
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::Unhealthy));
}

#[test]
fn a_learner_that_never_starts_is_dropped_after_the_policy() {
    let mut obs = cluster(3, 0);
    members(&mut obs)[2] = learner(2, 0, false, 0);
    members(&mut obs)[2].unhealthy_secs = 1000;
    let policy = Desired { member_lost_after_secs: Some(300), ..want(3) };
    assert_eq!(plan(&policy, &obs), Step::RemoveMember { id: 102, reason: RemoveReason::Lost });
    // A short policy for members does not cut a starting learner's grace.
    members(&mut obs)[2].unhealthy_secs = 60;
    let short = Desired { member_lost_after_secs: Some(10), ..want(3) };
    assert_eq!(plan(&short, &obs), Step::Wait(Waiting::LearnerStarting(2)));
}

#[test]
fn an_election_is_waited_out() {
    let mut obs = cluster(3, 0);
    for m in members(&mut obs) {
        m.health.as_mut().unwrap().leader = 0;
    }
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::NoLeader));
}

fn quorum_lost(volumes_gone: bool) -> Observed {
    let mut obs = cluster(3, 0);
    let ms = members(&mut obs);
    ms[0] = down(member(0, 0), 30);
    ms[1] = down(member(1, 0), 30);
    ms[2].health.as_mut().unwrap().leader = 0;
    if volumes_gone {
        obs.volumes[0].uid = "new".into();
        obs.volumes.remove(1);
    }
    obs
}

#[test]
fn quorum_loss_waits_while_the_majority_may_come_back() {
    assert_eq!(
        plan(&want(3), &quorum_lost(false)),
        Step::Wait(Waiting::QuorumLost { manual: false })
    );
}

#[test]
fn quorum_loss_recovers_from_the_survivor_once_the_majority_is_gone() {
    assert_eq!(plan(&want(3), &quorum_lost(true)), Step::ForceNewCluster { ordinal: 2, id: 102 });
}

#[test]
fn quorum_loss_with_a_manual_policy_only_reports() {
    let manual = Desired { auto_recover: false, ..want(3) };
    assert_eq!(plan(&manual, &quorum_lost(true)), Step::Wait(Waiting::QuorumLost { manual: true }));
}

#[test]
fn quorum_loss_counts_long_downtime_under_the_policy() {
    let policy = Desired { member_lost_after_secs: Some(20), ..want(3) };
    assert_eq!(plan(&policy, &quorum_lost(false)), Step::ForceNewCluster { ordinal: 2, id: 102 });
}

#[test]
fn quorum_loss_picks_the_most_advanced_survivor() {
    // 5 voters, 3 gone for good, 2 survivors: the one with the longer log wins.
    let mut obs = cluster(5, 0);
    let ms = members(&mut obs);
    for m in ms.iter_mut().take(3) {
        *m = down(m.clone(), 30);
    }
    for m in ms.iter_mut().skip(3) {
        m.health.as_mut().unwrap().leader = 0;
    }
    ms[3].health.as_mut().unwrap().raft_index = 900;
    ms[4].health.as_mut().unwrap().raft_index = 950;
    obs.volumes.retain(|v| v.ordinal >= 3);
    assert_eq!(plan(&want(5), &obs), Step::ForceNewCluster { ordinal: 4, id: 104 });
}

#[test]
fn no_answer_at_all_is_waited_for() {
    let mut obs = cluster(3, 0);
    obs.members = None;
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::NoMemberAnswers));
}

#[test]
fn rolling_restart_goes_one_pod_at_a_time_leader_last() {
    let mut obs = cluster(3, 1);
    for p in &mut obs.pods {
        p.current_template = false;
    }
    assert_eq!(plan(&want(3), &obs), Step::RestartPod { ordinal: 2 });
    obs.pods[2].current_template = true;
    assert_eq!(plan(&want(3), &obs), Step::RestartPod { ordinal: 0 });
    obs.pods[0].current_template = true;
    assert_eq!(plan(&want(3), &obs), Step::MoveLeader { from: 101, to: 100 });
}

#[test]
fn rolling_restart_waits_for_health_between_pods() {
    let mut obs = cluster(3, 0);
    obs.pods[1].current_template = false;
    members(&mut obs)[2] = down(member(2, 0), 1);
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::Unhealthy));
    obs.pods[2].terminating = true;
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::PodsSettling));
}

#[test]
fn a_stale_pod_whose_member_is_the_one_down_is_replaced() {
    // An upgrade to an image that cannot run left pod 2 down on it; the spec is corrected:
    // pod 2 (stale again, down) is replaced first, the healthy ones wait for it.
    let mut obs = cluster(3, 0);
    for p in &mut obs.pods {
        p.current_template = false;
    }
    members(&mut obs)[2] = down(member(2, 0), 30);
    assert_eq!(plan(&want(3), &obs), Step::RestartPod { ordinal: 2 });
    // Two down: nothing is restarted.
    members(&mut obs)[1] = down(member(1, 0), 30);
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::Unhealthy));
}

#[test]
fn membership_is_finished_before_a_rolling_restart() {
    let mut obs = cluster(1, 0);
    obs.pods[0].current_template = false;
    assert_eq!(plan(&want(3), &obs), Step::AddLearner { ordinal: 1 });
}

#[test]
fn a_foreign_member_is_never_removed_by_scale_down() {
    let mut obs = cluster(3, 0);
    let mut foreign = member(7, 0);
    foreign.ordinal = None;
    members(&mut obs).push(foreign);
    // 4 members, want 3: the highest of OUR ordinals goes, never the foreign one.
    assert_eq!(
        plan(&want(3), &obs),
        Step::RemoveMember { id: 102, reason: RemoveReason::ScaleDown }
    );
}

#[test]
fn quorum_sizes() {
    assert_eq!([1, 2, 3, 4, 5].map(quorum), [1, 2, 2, 3, 3]);
}

#[test]
fn a_lone_member_restarts_without_a_leader_move() {
    let mut obs = cluster(1, 0);
    obs.pods[0].current_template = false;
    assert_eq!(plan(&want(1), &obs), Step::RestartPod { ordinal: 0 });
}

fn recovering() -> Observed {
    let mut obs = quorum_lost(true);
    obs.recovering = Some(Recovering { ordinal: 2, id: 102, restarting: false });
    obs.volumes.retain(|v| v.ordinal == 2);
    obs
}

#[test]
fn recovery_deletes_the_lost_members_volumes_first() {
    // Pods started later on them would re-form the old majority around the survivor.
    let mut obs = quorum_lost(false);
    obs.recovering = Some(Recovering { ordinal: 2, id: 102, restarting: false });
    assert_eq!(plan(&want(3), &obs), Step::DeleteVolume { ordinal: 0 });
    obs.volumes[0].terminating = true;
    assert_eq!(plan(&want(3), &obs), Step::DeleteVolume { ordinal: 1 });
    obs.volumes[1].terminating = true;
    // Deleted volumes must be gone (not only being deleted) before the survivor goes on.
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::Recovering(2)));
    obs.volumes.retain(|v| v.ordinal == 2);
    obs.pods.retain(|p| p.ordinal == 2);
    obs.pods[0].current_template = false;
    assert_eq!(plan(&want(3), &obs), Step::RestartPod { ordinal: 2 });
}

#[test]
fn recovery_restarts_the_survivor_onto_the_force_new_cluster_template() {
    let mut obs = recovering();
    obs.pods.retain(|p| p.ordinal == 2);
    obs.pods[0].current_template = false;
    assert_eq!(plan(&want(3), &obs), Step::RestartPod { ordinal: 2 });
    obs.pods[0].terminating = true;
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::Recovering(2)));
}

#[test]
fn recovery_finishes_once_the_survivor_leads_alone() {
    let mut obs = recovering();
    obs.pods.retain(|p| p.ordinal == 2);
    // Still three voters listed: not yet.
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::Recovering(2)));
    let mut survivor = member(2, 2);
    survivor.health.as_mut().unwrap().raft_index = 1001;
    obs.members = Some(vec![survivor]);
    assert_eq!(plan(&want(3), &obs), Step::FinishRecovery { ordinal: 2 });
    // Second stage: the survivor restarts without the flag, then the recovery ends.
    obs.recovering = Some(Recovering { ordinal: 2, id: 102, restarting: true });
    obs.pods[0].current_template = false;
    assert_eq!(plan(&want(3), &obs), Step::RestartPod { ordinal: 2 });
    obs.pods[0].current_template = true;
    assert_eq!(plan(&want(3), &obs), Step::EndRecovery);
}

#[test]
fn after_recovery_the_cluster_grows_back_learner_first_over_fresh_volumes() {
    // The survivor is ordinal 2; the StatefulSet is back at 3 pods from ordinal 0.
    let mut obs = cluster(3, 2);
    obs.members = Some(vec![member(2, 2)]);
    assert_eq!(plan(&want(3), &obs), Step::AddLearner { ordinal: 0 });
}

#[test]
fn defragmentation_goes_one_member_at_a_time_leader_last() {
    let every = Desired { defragment_every_secs: Some(3600), ..want(3) };
    let mut obs = cluster(3, 2);
    assert_eq!(plan(&every, &obs), Step::Done, "nothing due yet");
    for m in members(&mut obs) {
        m.since_defragment_secs = 4000;
    }
    assert_eq!(plan(&every, &obs), Step::Defragment { id: 101 });
    members(&mut obs)[1].since_defragment_secs = 0;
    assert_eq!(plan(&every, &obs), Step::Defragment { id: 100 });
    members(&mut obs)[0].since_defragment_secs = 0;
    assert_eq!(plan(&every, &obs), Step::Defragment { id: 102 });
    // Never while a member is unhealthy.
    members(&mut obs)[0] = down(member(0, 2), 1);
    assert_eq!(plan(&every, &obs), Step::Wait(Waiting::Unhealthy));
}

#[test]
fn a_pod_running_as_a_removed_member_is_reset_before_any_add() {
    let mut obs = cluster(3, 0);
    members(&mut obs).pop();
    // Its process still answers as the removed member 102.
    obs.pods[2].member_id = Some(102);
    assert_eq!(plan(&want(3), &obs), Step::ResetOrdinal { ordinal: 2 });
    obs.pods[2].terminating = true;
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::PodsSettling));
    // The recreated pod has no identity yet: now the learner is added.
    obs.pods[2] = pod(2);
    assert_eq!(plan(&want(3), &obs), Step::AddLearner { ordinal: 2 });
}

#[test]
fn a_pod_with_more_log_than_the_leader_is_never_reset() {
    // The "leader" is a member that founded a second cluster on an emptied volume under the
    // same ids: its list lacks 102, whose pod holds the real cluster's longer log.
    let mut obs = cluster(3, 0);
    members(&mut obs).pop();
    obs.pods[2].member_id = Some(102);
    obs.pods[2].raft_index = Some(LEADER_INDEX + 1);
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::AheadOfLeader(2)));
    // A removed member's log stops at its removal, which the leader has.
    obs.pods[2].raft_index = Some(LEADER_INDEX);
    assert_eq!(plan(&want(3), &obs), Step::ResetOrdinal { ordinal: 2 });
}

#[test]
fn the_founding_pod_is_recreated_before_anyone_joins() {
    let mut obs = cluster(1, 0);
    obs.pods[0].founding = true;
    assert_eq!(plan(&want(3), &obs), Step::RestartFounder { ordinal: 0 });
    assert_eq!(plan(&want(1), &obs), Step::RestartFounder { ordinal: 0 });
    obs.pods[0].terminating = true;
    assert_eq!(plan(&want(3), &obs), Step::Wait(Waiting::PodsSettling));
    obs.pods[0] = pod(0);
    assert_eq!(plan(&want(3), &obs), Step::AddLearner { ordinal: 1 });
}

#[test]
fn a_founding_pod_of_a_grown_cluster_is_rolled_like_a_stale_one() {
    // A cluster made before founders were recreated: pod 0 still has the founding flags.
    let mut obs = cluster(3, 0);
    obs.pods[0].founding = true;
    assert_eq!(plan(&want(3), &obs), Step::MoveLeader { from: 100, to: 101 });
    members(&mut obs).iter_mut().for_each(|m| m.health.as_mut().unwrap().leader = 101);
    assert_eq!(plan(&want(3), &obs), Step::RestartPod { ordinal: 0 });
}

#[test]
fn a_larger_storage_size_grows_each_volume_its_class_allows() {
    let bigger = Desired { volume_bytes: Some(2 * GI), ..want(3) };
    let mut obs = cluster(3, 0);
    assert_eq!(plan(&bigger, &obs), Step::Done, "no class allows expansion: left as they are");
    for v in &mut obs.volumes {
        v.expandable = true;
    }
    assert_eq!(plan(&bigger, &obs), Step::ExpandVolume { ordinal: 0 });
    obs.volumes[0].requested_bytes = Some(2 * GI);
    assert_eq!(plan(&bigger, &obs), Step::ExpandVolume { ordinal: 1 });
    obs.volumes[1].requested_bytes = Some(2 * GI);
    obs.volumes[2].requested_bytes = Some(3 * GI);
    assert_eq!(plan(&bigger, &obs), Step::Done, "a larger volume is never shrunk");
    // A size the operator cannot read is never acted on.
    obs.volumes[1].requested_bytes = None;
    assert_eq!(plan(&bigger, &obs), Step::Done);
}

#[test]
fn volumes_grow_only_once_membership_is_settled() {
    let bigger = Desired { volume_bytes: Some(2 * GI), ..want(3) };
    let mut obs = cluster(2, 0);
    for v in &mut obs.volumes {
        v.expandable = true;
    }
    assert_eq!(plan(&bigger, &obs), Step::AddLearner { ordinal: 2 });
    // A removed member's leftover volume (policy Retain) is not grown.
    let mut obs = cluster(3, 0);
    let retain = Desired { delete_removed_volumes: false, ..bigger };
    obs.volumes.push(VolumeObs { expandable: true, ..vol(3) });
    for v in obs.volumes.iter_mut().take(3) {
        v.requested_bytes = Some(2 * GI);
    }
    assert_eq!(plan(&retain, &obs), Step::Done);
}
