//! Membership changes as etcd's Cluster API defines them, carried out with openraft.
//!
//! Differences from etcd, by design: a member added as a voter joins raft as a learner and is
//! promoted automatically once it has caught up (`promote_pending`), so adding a member never
//! costs the cluster its quorum while the new member starts. etcd's strict reconfiguration
//! checks apply to every change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use crate::cluster;
use crate::error::{Error, Result};
use crate::member::server::EtcdServer;
use crate::pb::etcdserverpb::Member;
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::{Empty, MemberAdded, MemberAttributes, MemberPromoted, MemberRemoved};

/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;
/// A learner is "in sync" when it has at least this share of the leader's log (etcd: 90%).
const PROMOTE_READY_RATIO: f64 = 0.9;

/// A snapshot of raft's view of the cluster, taken from its metrics.
struct View {
    leader: Option<u64>,
    voters: BTreeSet<u64>,
    learners: BTreeSet<u64>,
    nodes: BTreeMap<u64, BasicNode>,
    last_log_index: u64,
    matched: BTreeMap<u64, u64>,
}

fn view(server: &EtcdServer) -> View {
    let m = server.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    View {
        leader: m.current_leader,
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        nodes: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
        last_log_index: m.last_log_index.unwrap_or(0),
        matched: m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index).unwrap_or(0))).collect())
            .unwrap_or_default(),
    }
}

/// Every member as etcd lists them: raft's voters and learners joined with their attributes.
/// A member added as a voter but still catching up is listed as a voter, as etcd would.
pub fn list(server: &EtcdServer) -> Vec<Member> {
    let v = view(server);
    let attrs = server.cluster().members();
    v.nodes
        .iter()
        .map(|(id, node)| {
            let a = attrs.get(id);
            let pending_voter = a.map(|a| a.pending_voter).unwrap_or(false);
            Member {
                id: *id,
                name: a.map(|a| a.name.clone()).unwrap_or_default(),
                peer_ur_ls: a
                    .map(|a| a.peer_urls.clone())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| vec![node.addr.clone()]),
                client_ur_ls: a.map(|a| a.client_urls.clone()).unwrap_or_default(),
                is_learner: v.learners.contains(id) && !pending_voter,
            }
        })
        .collect()
}

/// `member add`: records the member and starts replicating to it as a learner.
pub async fn add(server: &EtcdServer, peer_urls: Vec<String>, is_learner: bool) -> Result<Member> {
    check_urls(&peer_urls)?;
    let v = view(server);
    if v.leader != Some(server.member_id()) {
        return Err(Error::NotLeader);
    }
    let members = list(server);
    if members.iter().any(|m| m.peer_ur_ls.iter().any(|u| peer_urls.contains(u))) {
        return Err(Error::PeerUrlExist);
    }
    if is_learner {
        if members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
            return Err(Error::TooManyLearners);
        }
    } else if server.config().strict_reconfig_check && !ready_to_add_voter(&members) {
        return Err(Error::MemberNotEnoughStarted);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let id = cluster::member_id(&peer_urls, &server.config().initial_cluster_token, Some(now));
    if v.nodes.contains_key(&id) {
        return Err(Error::MemberExist);
    }
    server
        .propose(Cmd::MemberAdded(MemberAdded {
            id,
            peer_urls: peer_urls.clone(),
            pending_voter: !is_learner,
        }))
        .await?;
    let node = BasicNode::new(peer_urls.first().cloned().unwrap_or_default());
    server.raft().add_learner(id, node, false).await.map_err(write_err)?;
    Ok(Member {
        id,
        name: String::new(),
        peer_ur_ls: peer_urls,
        client_ur_ls: Vec::new(),
        is_learner,
    })
}

/// `member remove`.
pub async fn remove(server: &EtcdServer, id: u64) -> Result<()> {
    let v = view(server);
    if v.leader != Some(server.member_id()) {
        return Err(Error::NotLeader);
    }
    if !v.nodes.contains_key(&id) {
        return Err(Error::MemberNotFound);
    }
    let is_voter = v.voters.contains(&id);
    if is_voter && server.config().strict_reconfig_check && !ready_to_remove_voter(server, &v, id) {
        return Err(Error::MemberNotEnoughStarted);
    }
    let change = if is_voter {
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    server.raft().change_membership(change, false).await.map_err(write_err)?;
    // If this member removed itself it no longer leads; `propose` forwards to the new leader.
    server.propose(Cmd::MemberRemoved(MemberRemoved { id })).await?;
    Ok(())
}

/// `member promote`: only a learner that has nearly all of the leader's log.
pub async fn promote(server: &EtcdServer, id: u64) -> Result<()> {
    let v = view(server);
    if v.leader != Some(server.member_id()) {
        return Err(Error::NotLeader);
    }
    if !v.nodes.contains_key(&id) {
        return Err(Error::MemberNotFound);
    }
    if !v.learners.contains(&id) {
        return Err(Error::MemberNotLearner);
    }
    if !caught_up(&v, id) {
        return Err(Error::LearnerNotReady);
    }
    make_voter(server, id).await
}

/// `member update`: new peer URLs for a member.
pub async fn update(server: &EtcdServer, id: u64, peer_urls: Vec<String>) -> Result<()> {
    check_urls(&peer_urls)?;
    let v = view(server);
    if v.leader != Some(server.member_id()) {
        return Err(Error::NotLeader);
    }
    if !v.nodes.contains_key(&id) {
        return Err(Error::MemberNotFound);
    }
    let members = list(server);
    if members.iter().any(|m| m.id != id && m.peer_ur_ls.iter().any(|u| peer_urls.contains(u))) {
        return Err(Error::PeerUrlExist);
    }
    let node = BasicNode::new(peer_urls.first().cloned().unwrap_or_default());
    server
        .raft()
        .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true)
        .await
        .map_err(write_err)?;
    let mut attrs =
        server.cluster().member(id).unwrap_or(MemberAttributes { id, ..Default::default() });
    attrs.peer_urls = peer_urls;
    server.propose(Cmd::MemberAttributes(attrs)).await?;
    Ok(())
}

/// `move-leader`: hands leadership to a caught-up voter. The leader stops heartbeats so the
/// followers' leader leases lapse, then asks the target to campaign.
pub async fn move_leader(server: &EtcdServer, target: u64) -> Result<()> {
    let v = view(server);
    if v.leader != Some(server.member_id()) {
        return Err(Error::NotLeader);
    }
    if !v.voters.contains(&target) {
        return Err(Error::BadLeaderTransferee);
    }
    if target == server.member_id() {
        return Ok(());
    }
    let addr = v.nodes.get(&target).map(|n| n.addr.clone()).ok_or(Error::BadLeaderTransferee)?;
    // New proposals wait (and then go to the new leader) rather than keep renewing the
    // followers' leader lease, which would make them refuse the target's votes; the guard
    // lets them go however this ends, including when the client's deadline drops the call.
    let _held = server.hold_proposals();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.proposals_in_flight() > 0 || !caught_up_fully(&view(server), target) {
        if Instant::now() > deadline {
            return Err(Error::Timeout);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // With heartbeats off, the followers' openraft leader lease (`Config::openraft_timeouts`,
    // three heartbeats) runs out after `lease`; only then will they vote for the target. They
    // campaign on their own only much later, after the pre-vote's longer lease
    // (`Config::raft_election_timeouts`), so the target wins that window.
    let config = server.config();
    let lease = Duration::from_millis(config.openraft_timeouts().1 + config.heartbeat_interval);
    server.raft().runtime_config().heartbeat(false);
    // Restores heartbeats however this ends, including when the client's deadline cancels
    // the call and this future is dropped mid-way.
    let _heartbeats = HeartbeatsOff(server.raft());
    async {
        tokio::time::sleep(lease).await;
        let mut peer = server.peer(&addr)?;
        peer.campaign(Empty {}).await.map_err(|_| Error::BadLeaderTransferee)?;
        let mut metrics = server.raft().metrics();
        let waited = tokio::time::timeout(
            Duration::from_secs(5),
            metrics.wait_for(|m| {
                m.current_leader.is_some() && m.current_leader != Some(server.member_id())
            }),
        )
        .await;
        match waited {
            Ok(Ok(m)) if m.current_leader == Some(target) => Ok(()),
            Ok(Ok(_)) => Err(Error::LeaderChanged),
            _ => Err(Error::Timeout),
        }
    }
    .await
}

/// etcd's `TransferLeadership` on a graceful stop: a leader of a cluster with other voters
/// hands its leadership to the most up-to-date of them first, so the others' writes go on
/// with a short pause instead of failing until they elect a leader of their own. Bounded by
/// the request timeout; a failure only means the others elect one as after a crash.
pub async fn hand_over_on_stop(server: &EtcdServer) -> Result<()> {
    let v = view(server);
    if v.leader != Some(server.member_id()) {
        return Ok(());
    }
    let Some(target) = v
        .voters
        .iter()
        .copied()
        .filter(|id| *id != server.member_id())
        .max_by_key(|id| v.matched.get(id).copied().unwrap_or(0))
    else {
        return Ok(());
    };
    tracing::info!(target = %format!("{target:x}"), "stopping: handing leadership over");
    tokio::time::timeout(crate::member::server::PROPOSE_TIMEOUT, move_leader(server, target))
        .await
        .unwrap_or(Err(Error::Timeout))
}

/// Turns the leader's heartbeats back on when dropped (see `move_leader`).
struct HeartbeatsOff<'a>(&'a crate::raft::Raft);

impl Drop for HeartbeatsOff<'_> {
    fn drop(&mut self) {
        self.0.runtime_config().heartbeat(true);
    }
}

/// Leader duty: promote members that were added as voters once they have caught up.
pub async fn promote_pending(server: EtcdServer, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let v = view(&server);
        if v.leader != Some(server.member_id()) {
            continue;
        }
        for (id, attrs) in server.cluster().members() {
            if !attrs.pending_voter {
                continue;
            }
            let result = if v.voters.contains(&id) {
                // Promoted by raft already (e.g. a leader change mid-way): finish the record.
                server.propose(Cmd::MemberPromoted(MemberPromoted { id })).await.map(|_| ())
            } else if v.learners.contains(&id) && caught_up(&v, id) {
                make_voter(&server, id).await
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::warn!(member = %format!("{id:x}"), error = %e, "promoting a caught-up member");
            }
        }
    }
}

async fn make_voter(server: &EtcdServer, id: u64) -> Result<()> {
    server
        .raft()
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
        .await
        .map_err(write_err)?;
    server.propose(Cmd::MemberPromoted(MemberPromoted { id })).await?;
    crate::metrics::LEARNER_PROMOTE_SUCCESSES.inc();
    Ok(())
}

fn caught_up(v: &View, id: u64) -> bool {
    let matched = v.matched.get(&id).copied().unwrap_or(0) as f64;
    matched >= v.last_log_index as f64 * PROMOTE_READY_RATIO && matched > 0.0
}

fn caught_up_fully(v: &View, id: u64) -> bool {
    v.matched.get(&id).copied().unwrap_or(0) >= v.last_log_index
}

/// etcd's `IsReadyToAddVotingMember`: the started voters must still form a quorum of the
/// enlarged cluster (a one-member cluster may always grow to two).
fn ready_to_add_voter(members: &[Member]) -> bool {
    let voters: Vec<&Member> = members.iter().filter(|m| !m.is_learner).collect();
    let started = voters.iter().filter(|m| !m.name.is_empty()).count();
    let total = voters.len() + 1;
    if started == 1 && total == 2 {
        return true;
    }
    started > total / 2
}

/// etcd's `IsReadyToRemoveVotingMember`: the remaining started voters must form a quorum.
fn ready_to_remove_voter(server: &EtcdServer, v: &View, id: u64) -> bool {
    let attrs = server.cluster().members();
    let remaining: Vec<u64> = v.voters.iter().copied().filter(|m| *m != id).collect();
    let started = remaining
        .iter()
        .filter(|m| attrs.get(m).map(|a| !a.name.is_empty()).unwrap_or(false))
        .count();
    started > remaining.len() / 2
}

fn check_urls(urls: &[String]) -> Result<()> {
    if urls.is_empty() {
        return Err(Error::MemberBadUrls);
    }
    for url in urls {
        let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))
        else {
            return Err(Error::MemberBadUrls);
        };
        let Some((host, port)) = rest.trim_end_matches('/').rsplit_once(':') else {
            return Err(Error::MemberBadUrls);
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(Error::MemberBadUrls);
        }
    }
    Ok(())
}

fn write_err(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Error::InvalidArgument(format!("etcdserver: {e}"))
        }
        RaftError::Fatal(_) => Error::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, learner: bool) -> Member {
        Member { name: name.into(), is_learner: learner, ..Default::default() }
    }

    #[test]
    fn add_voter_needs_started_quorum() {
        assert!(ready_to_add_voter(&[member("a", false)]));
        assert!(ready_to_add_voter(&[member("a", false), member("b", false), member("c", false)]));
        assert!(!ready_to_add_voter(&[member("a", false), member("", false), member("", false)]));
        assert!(!ready_to_add_voter(&[member("a", false), member("", false)]));
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_urls(&["http://127.0.0.1:2380".into()]).is_ok());
        assert!(check_urls(&["127.0.0.1:2380".into()]).is_err());
        assert!(check_urls(&["http://host".into()]).is_err());
        assert!(check_urls(&[]).is_err());
    }
}
