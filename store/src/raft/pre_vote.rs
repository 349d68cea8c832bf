//! Pre-vote: a member asks before it starts an election, so a healthy leader is never
//! disrupted (etcd's `--pre-vote`, on by default since 3.5).
//!
//! openraft 0.9 has no pre-vote: a follower that was paused (SIGSTOP, a long GC-like stall) or
//! cut off starts an election at a higher term as soon as it runs again; its peers refuse the
//! vote while they hear from the leader, but the leader learns the higher term from the
//! follower's next append answer and steps down, so the whole cluster stops writing for an
//! election. Here openraft's own election timer is off (`enable_elect: false`) and the
//! [`Elector`] decides instead: once this voter has not heard from a leader for
//! [`ElectionTiming::wait`], it asks every voter whether it *would* vote (`PreVote` on the
//! peer service) and triggers openraft's election only when a majority says yes. A voter
//! says yes only when it has not heard from a leader for the pre-vote lease
//! ([`ElectionTiming::lease`], from `--election-timeout`), is not the leader, has not already
//! moved to that term, and the asker's log is as complete as its own — the conditions under
//! which its real vote would be granted too.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::network::stop_if_removed;
use super::{decode, encode, LogId, Raft};
use crate::pb::oxcdpb::raft_peer_client::RaftPeerClient;
use crate::pb::oxcdpb::RaftBytes;

/// When this member last heard from a leader it follows: an append or snapshot chunk it
/// accepted. Written by the peer service, read by the elector and by pre-vote answers. Also
/// whether the leader counts as lost: from the elector's first pre-vote until a leader is
/// heard from again this member reports no leader, as etcd's pre-candidate does (openraft
/// still names the old one, since this member has not voted since).
#[derive(Debug)]
pub struct LeaderContact {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last contact.
    last: AtomicU64,
    /// Set by the elector when it starts asking for votes, cleared by the next contact.
    lost: tokio::sync::watch::Sender<bool>,
}

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            lost: tokio::sync::watch::channel(false).0,
        }
    }
}

impl LeaderContact {
    /// A leader was heard from just now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
        if *self.lost.borrow() {
            self.lost.send_replace(false);
        }
    }

    /// The elector gave up on the leader and asks for votes.
    pub fn mark_lost(&self) {
        self.lost.send_if_modified(|lost| !std::mem::replace(lost, true));
    }

    /// Whether the leader counts as lost (see the type's doc).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Follows `is_lost`.
    pub fn subscribe_lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lost.subscribe()
    }

    /// How long ago a leader was last heard from (since start if never).
    pub fn elapsed(&self) -> Duration {
        let now = self.epoch.elapsed();
        now.saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }
}

/// The question: would you vote for me at `term` with my log ending at `last_log_id`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The asking member.
    pub candidate: u64,
    /// The term the asker would campaign at (its current term + 1).
    pub term: u64,
    /// The asker's last log id.
    pub last_log_id: Option<LogId>,
}

/// The answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteResponse {
    /// Whether the voter would vote for the asker now.
    pub granted: bool,
}

/// What a voter knows of itself when it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterView {
    /// Whether it leads.
    pub leading: bool,
    /// Its current term.
    pub term: u64,
    /// Its last log id.
    pub last_log_id: Option<LogId>,
    /// How long ago it last heard from a leader.
    pub since_leader: Duration,
}

/// The answer of a voter in state `me` with pre-vote lease `lease`: yes only where its real
/// vote would be granted as well (openraft's own lease is shorter, `Config::openraft_timeouts`),
/// so a granted pre-vote never starts a useless election.
pub fn answer(req: &PreVoteRequest, me: &VoterView, lease: Duration) -> PreVoteResponse {
    let granted = !me.leading
        && me.since_leader > lease
        && req.term > me.term
        && req.last_log_id >= me.last_log_id;
    PreVoteResponse { granted }
}

/// This member's view, read from openraft's metrics.
pub fn view(raft: &Raft, contact: &LeaderContact) -> VoterView {
    let m = raft.metrics().borrow().clone();
    VoterView {
        leading: m.state.is_leader(),
        term: m.current_term,
        last_log_id: raft.data_metrics().borrow().last_log,
        since_leader: contact.elapsed(),
    }
}

/// The election timing from etcd's flags (after `Config::raft_election_timeouts`).
#[derive(Debug, Clone, Copy)]
pub struct ElectionTiming {
    /// The lower bound of `Config::raft_election_timeouts`.
    pub min: Duration,
    /// Its upper bound, the pre-vote lease: a voter refuses pre-votes for that long after it
    /// last heard from the leader.
    pub max: Duration,
    /// `--heartbeat-interval`.
    pub heartbeat: Duration,
}

impl ElectionTiming {
    /// The pre-vote lease voters keep (longer than openraft's own, which only a move-leader
    /// target's campaign has to wait out).
    pub fn lease(&self) -> Duration {
        self.max
    }

    /// How long without a leader before asking: past the voters' lease plus one heartbeat
    /// (the voters may have heard from the leader a little after this member did), plus a
    /// random spread of `max - min` so two followers rarely ask at once. A move-leader target
    /// campaigns far sooner (openraft's lease of three heartbeats, plus one), so it goes
    /// first. openraft's own timer waited its lease plus `min..max`.
    pub fn wait(&self) -> Duration {
        let spread = self.max.saturating_sub(self.min).as_millis() as u64;
        let jitter = rand::thread_rng().gen_range(0..=spread);
        self.lease() + self.heartbeat + Duration::from_millis(jitter)
    }
}

/// Dials the other voters for pre-votes.
pub trait PreVoteDialer: Send + Sync {
    /// A client for the voter at peer URL `addr`.
    fn client(&self, addr: &str) -> Option<RaftPeerClient<tonic::transport::Channel>>;

    /// Where a peer's answer that this member was removed from the cluster stops it (as
    /// when raft traffic is answered so, `raft::network::stop_if_removed`).
    fn removal_signal(&self) -> &tokio::sync::watch::Sender<bool>;
}

/// Runs this member's elections: the loop that replaces openraft's election timer.
pub struct Elector<D> {
    raft: Raft,
    member_id: u64,
    contact: Arc<LeaderContact>,
    timing: ElectionTiming,
    dialer: D,
}

impl<D: PreVoteDialer> Elector<D> {
    /// An elector for member `member_id`.
    pub fn new(
        raft: Raft,
        member_id: u64,
        contact: Arc<LeaderContact>,
        timing: ElectionTiming,
        dialer: D,
    ) -> Self {
        Elector { raft, member_id, contact, timing, dialer }
    }

    /// Watches for a lost leader until `stop` says so.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let tick = (self.timing.heartbeat / 2).max(Duration::from_millis(10));
        let mut wait = self.timing.wait();
        let mut last_attempt: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let m = self.raft.metrics().borrow().clone();
            if m.state.is_leader() {
                continue;
            }
            let membership = m.membership_config.membership().clone();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            if !voters.contains(&self.member_id) {
                continue;
            }
            if voters.len() == 1 {
                // The only voter needs nobody's answer (openraft elects it at once too).
                if !m.state.is_candidate() {
                    let _ = self.raft.trigger().elect().await;
                }
                continue;
            }
            let quiet = self.contact.elapsed();
            let since_attempt = last_attempt.map(|t| t.elapsed()).unwrap_or(Duration::MAX);
            if quiet < wait || since_attempt < wait {
                continue;
            }
            last_attempt = Some(Instant::now());
            wait = self.timing.wait();
            self.contact.mark_lost();
            let me = view(&self.raft, &self.contact);
            let req = PreVoteRequest {
                candidate: self.member_id,
                term: me.term + 1,
                last_log_id: me.last_log_id,
            };
            let others = voters.iter().filter(|id| **id != self.member_id);
            let addrs: Vec<(u64, String)> = others
                .filter_map(|id| membership.get_node(id).map(|n| (*id, n.addr.clone())))
                .collect();
            let granted = 1 + self.ask(&addrs, &req).await;
            tracing::info!(
                term = req.term,
                granted,
                voters = voters.len(),
                quiet_ms = quiet.as_millis() as u64,
                "pre-vote"
            );
            if granted * 2 > voters.len() {
                let _ = self.raft.trigger().elect().await;
            }
        }
    }

    /// How many of the voters at `addrs` grant `req`, each asked at once and given until the
    /// election's minimum timeout to answer.
    async fn ask(&self, addrs: &[(u64, String)], req: &PreVoteRequest) -> usize {
        let Ok(data) = encode(req) else { return 0 };
        let calls = addrs.iter().map(|(id, addr)| {
            let client = self.dialer.client(addr);
            let data = data.clone();
            async move {
                let mut client = client?;
                let call = client.pre_vote(RaftBytes { data });
                match tokio::time::timeout(self.timing.min, call).await {
                    Ok(Ok(reply)) => {
                        decode::<PreVoteResponse>(&reply.into_inner().data).ok().map(|r| r.granted)
                    }
                    // A member from before pre-vote: its real vote decides, as before.
                    Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Some(true),
                    Ok(Err(status))
                        if stop_if_removed(&status, *id, self.dialer.removal_signal()) =>
                    {
                        None
                    }
                    Ok(Err(status)) => {
                        tracing::debug!(peer = %format!("{id:x}"), error = %status, "pre-vote not answered");
                        None
                    }
                    Err(_) => None,
                }
            }
        });
        let answers = futures::future::join_all(calls).await;
        answers.into_iter().filter(|a| *a == Some(true)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(term: u64, index: u64) -> Option<LogId> {
        Some(openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index))
    }

    fn follower(since_leader_ms: u64) -> VoterView {
        VoterView {
            leading: false,
            term: 5,
            last_log_id: log(5, 100),
            since_leader: Duration::from_millis(since_leader_ms),
        }
    }

    const LEASE: Duration = Duration::from_millis(750);

    #[test]
    fn a_voter_that_hears_from_its_leader_refuses() {
        let req = PreVoteRequest { candidate: 2, term: 6, last_log_id: log(5, 100) };
        assert!(!answer(&req, &follower(100), LEASE).granted);
        assert!(answer(&req, &follower(800), LEASE).granted);
    }

    #[test]
    fn the_leader_refuses() {
        let req = PreVoteRequest { candidate: 2, term: 6, last_log_id: log(5, 100) };
        let leader = VoterView { leading: true, ..follower(10_000) };
        assert!(!answer(&req, &leader, LEASE).granted);
    }

    #[test]
    fn a_shorter_log_or_a_stale_term_is_refused() {
        let me = follower(10_000);
        let shorter = PreVoteRequest { candidate: 2, term: 6, last_log_id: log(5, 99) };
        assert!(!answer(&shorter, &me, LEASE).granted);
        let older_term = PreVoteRequest { candidate: 2, term: 6, last_log_id: log(4, 200) };
        assert!(!answer(&older_term, &me, LEASE).granted);
        let longer = PreVoteRequest { candidate: 2, term: 6, last_log_id: log(5, 101) };
        assert!(answer(&longer, &me, LEASE).granted);
        // Already at that term (another candidate asked first): no.
        let same_term = PreVoteRequest { candidate: 2, term: 5, last_log_id: log(5, 100) };
        assert!(!answer(&same_term, &me, LEASE).granted);
    }

    #[test]
    fn the_wait_passes_the_lease_with_a_heartbeat_to_spare() {
        let t = ElectionTiming {
            min: Duration::from_millis(500),
            max: Duration::from_millis(750),
            heartbeat: Duration::from_millis(100),
        };
        for _ in 0..100 {
            let w = t.wait();
            assert!(w >= Duration::from_millis(850) && w <= Duration::from_millis(1100), "{w:?}");
        }
    }

    #[test]
    fn contact_is_measured_from_the_last_touch() {
        let c = LeaderContact::default();
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.elapsed() >= Duration::from_millis(30));
        c.touch();
        assert!(c.elapsed() < Duration::from_millis(30));
        c.mark_lost();
        assert!(c.is_lost());
        c.touch();
        assert!(!c.is_lost());
    }
}
