//! The member: wires storage, stores, raft and the background roles, and offers the two things
//! every API handler needs: `propose` (write through raft, wait for apply) and
//! `linearizable_read` (wait until this member has applied everything committed before now).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, RaftMetrics};
use prost::Message;
use tonic::transport::Channel;

use crate::apply::{into_result, Applier};
use crate::auth::{AuthInfo, AuthStore};
use crate::cluster::{self, ClusterState};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::member::headers::Headers;
use crate::mvcc::MvccStore;
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::pb::oxcdpb::raft_peer_client::RaftPeerClient;
use crate::pb::oxcdpb::{Empty, InternalRequest, LeaseExpire, MemberAttributes};
use crate::raft::log_store::LogStore;
use crate::raft::network::{peer_channel, peer_error, Network};
use crate::raft::peer_stats::PeerStats;
use crate::raft::pre_vote::{ElectionTiming, Elector, LeaderContact, PreVoteDialer};
use crate::raft::state_machine::StateMachine;
use crate::raft::Raft;
use crate::storage::schema::raft_meta_keys;
use crate::storage::{Cf, Storage};
use crate::watch::WatchHub;

/// How long a proposal may wait for raft before the client gets `Error::Timeout`.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(7);
/// How long a proposal waits before trying again when the leader was unknown or unreachable
/// (sooner when raft reports a change of leader).
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How many expired leases the leader revokes per tick.
const EXPIRE_BATCH: usize = 64;

/// A running member. Cheap to clone.
#[derive(Clone)]
pub struct EtcdServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    name: String,
    member_id: u64,
    storage: Storage,
    raft: Raft,
    mvcc: Arc<MvccStore>,
    lessor: Arc<Lessor>,
    cluster: Arc<ClusterState>,
    hub: Arc<WatchHub>,
    applier: Arc<Applier>,
    state_machine: StateMachine,
    headers: Headers,
    peers: Mutex<HashMap<String, RaftPeerClient<Channel>>>,
    id_gen: AtomicU64,
    /// The applied state's size (`Storage::state_size_bytes`), refreshed in the background;
    /// the quota checks read it.
    db_size: AtomicU64,
    /// Coalesces concurrent proposals into shared raft entries (group commit).
    batcher: crate::member::propose_batcher::ProposeBatcher,
    /// The batcher's task, owned here: `batcher_failed` watches it, `shutdown` stops it.
    batcher_task: tokio::sync::Mutex<crate::member::propose_batcher::BatcherTask>,
    /// Coalesces concurrent ReadIndex rounds.
    read_batcher: Arc<crate::member::read_index::ReadIndexBatcher>,
    /// Set once raft's membership no longer contains this member.
    removed: tokio::sync::watch::Sender<bool>,
    /// Raft traffic counts for etcd's v2 statistics (the network and peer service fill it).
    peer_stats: Arc<PeerStats>,
    /// When a leader was last heard from (the peer service touches it): the elector's and
    /// pre-vote answers' clock.
    leader_contact: Arc<LeaderContact>,
    /// Set while this leader hands its leadership over (`membership::move_leader`): new
    /// proposals wait instead of being appended, so the followers' leader lease can run out
    /// and the chosen member can win; they then go to the new leader.
    holding: tokio::sync::watch::Sender<bool>,
    /// Set when the member starts shutting down (see `stop_streams`).
    stopping: tokio::sync::watch::Sender<bool>,
    /// Set once this member's attributes are in the cluster's member list (etcd's
    /// `ReadyNotify`): client listeners serve only from then on.
    ready: tokio::sync::watch::Sender<bool>,
}

impl EtcdServer {
    /// Opens the data directory, starts raft and bootstraps or rejoins the cluster.
    pub async fn start(config: Config) -> anyhow::Result<EtcdServer> {
        let data_dir = config.data_dir();
        let storage = Storage::open(&data_dir.join("member").join("db"))
            .with_context(|| format!("opening data dir {}", data_dir.display()))?;
        // An install of a raft snapshot that a crash interrupted is finished first.
        crate::raft::transfer::recover(&storage).context("finishing a raft snapshot install")?;
        let (member_id, cluster_id) = identity(&config, &storage).await?;
        let mvcc = Arc::new(MvccStore::open(storage.clone())?);
        let lessor =
            Arc::new(Lessor::open(storage.clone(), config.min_lease_ttl(), mvcc.leased_keys())?);
        let cluster_state = Arc::new(ClusterState::open(storage.clone())?);
        let hub = WatchHub::new(mvcc.clone());
        hub.set_max_request_bytes(config.max_request_bytes);
        hub.set_progress_interval(config.progress_notify_interval());
        let token_ttl = Duration::from_secs(config.auth_token_ttl);
        let auth = AuthStore::open(storage.clone())?
            .with_token_ttl(token_ttl)
            .with_cert_users(config.tls.client_cert_auth)
            .with_jwt(
                crate::auth::jwt::Jwt::from_flag(&config.auth_token)
                    .map_err(|e| anyhow::anyhow!("--auth-token: {e}"))?,
            );
        let auth = Arc::new(auth);
        let applier = Arc::new(Applier::open(
            storage.clone(),
            mvcc.clone(),
            lessor.clone(),
            cluster_state.clone(),
            hub.clone(),
            auth,
        )?);
        let state_machine = StateMachine::new(
            storage.clone(),
            applier.clone(),
            mvcc.clone(),
            lessor.clone(),
            cluster_state.clone(),
        );
        let raft_config = openraft::Config {
            cluster_name: config.initial_cluster_token.clone(),
            heartbeat_interval: config.heartbeat_interval,
            election_timeout_min: config.openraft_timeouts().0,
            election_timeout_max: config.openraft_timeouts().1,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: config.experimental_snapshot_catchup_entries,
            max_payload_entries: 1024,
            snapshot_max_chunk_size: 4 << 20,
            // Elections start only after a pre-vote (`raft::pre_vote`'s elector).
            enable_elect: false,
            ..Default::default()
        }
        .validate()
        .context("raft configuration")?;
        let log_store = LogStore::new(storage.clone());
        if config.force_new_cluster {
            let url = Config::urls(&config.initial_advertise_peer_urls)
                .into_iter()
                .next()
                .unwrap_or_default();
            log_store
                .force_new_cluster(member_id, BasicNode::new(url))
                .context("--force-new-cluster")?;
            tracing::warn!(
                "--force-new-cluster: restarting as a single-member cluster with the existing data"
            );
        }
        let removed = tokio::sync::watch::channel(false).0;
        let peer_stats = Arc::new(PeerStats::default());
        let raft = Raft::new(
            member_id,
            Arc::new(raft_config),
            Network { member_id, cluster_id, removed: removed.clone(), stats: peer_stats.clone() },
            log_store,
            state_machine.clone(),
        )
        .await
        .context("starting raft")?;

        if config.initial_cluster_state == "new" && !raft.is_initialized().await? {
            let nodes: BTreeMap<u64, BasicNode> = initial_ids(&config)?
                .into_iter()
                .map(|(id, _, urls)| {
                    (id, BasicNode::new(urls.first().cloned().unwrap_or_default()))
                })
                .collect();
            raft.initialize(nodes).await.context("bootstrapping raft membership")?;
        }

        let seed = (member_id & 0xffff) << 48
            | ((std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
                & ((1 << 40) - 1))
                << 8);
        let (batcher, batcher_task) =
            crate::member::propose_batcher::ProposeBatcher::start(raft.clone());
        let server = EtcdServer {
            inner: Arc::new(Inner {
                name: config.name.clone(),
                config,
                member_id,
                storage,
                raft,
                mvcc,
                lessor,
                cluster: cluster_state,
                hub,
                applier,
                state_machine,
                headers: Headers::new(cluster_id, member_id),
                peers: Mutex::new(HashMap::new()),
                id_gen: AtomicU64::new(seed),
                removed,
                peer_stats,
                leader_contact: Arc::new(LeaderContact::default()),
                ready: tokio::sync::watch::channel(false).0,
                stopping: tokio::sync::watch::channel(false).0,
                holding: tokio::sync::watch::channel(false).0,
                read_batcher: crate::member::read_index::ReadIndexBatcher::new(),
                batcher,
                batcher_task: tokio::sync::Mutex::new(batcher_task),
                db_size: AtomicU64::new(0),
            }),
        };
        Ok(server)
    }

    /// Starts the background roles: raft observer, lease expiry, attribute publishing, learner
    /// promotion and the auto-compactor. They stop when `shutdown` says so; the caller owns
    /// the returned set, so a role that panics is noticed (each task yields its role's name).
    pub fn spawn_background(
        &self,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinSet<&'static str> {
        let mut roles = tokio::task::JoinSet::new();
        let (this, stop) = (self.clone(), shutdown.clone());
        roles.spawn(async move {
            this.observe_raft(stop).await;
            "raft observer"
        });
        let (this, stop) = (self.clone(), shutdown.clone());
        roles.spawn(async move {
            this.track_storage(stop).await;
            "storage tracker"
        });
        let (this, stop) = (self.clone(), shutdown.clone());
        roles.spawn(async move {
            this.expire_leases(stop).await;
            "lease expiry"
        });
        let (this, stop) = (self.clone(), shutdown.clone());
        roles.spawn(async move {
            this.publish_attributes(stop).await;
            "attribute publisher"
        });
        let (this, stop) = (self.clone(), shutdown.clone());
        roles.spawn(async move {
            crate::member::membership::promote_pending(this, stop).await;
            "learner promoter"
        });
        let (this, stop) = (self.clone(), shutdown.clone());
        roles.spawn(async move {
            let (raft, id, contact) =
                (this.inner.raft.clone(), this.inner.member_id, this.inner.leader_contact.clone());
            let timing = this.election_timing();
            Elector::new(raft, id, contact, timing, this).run(stop).await;
            "elector"
        });
        let this = self.clone();
        roles.spawn(async move {
            crate::member::compactor::run(this, shutdown).await;
            "auto compactor"
        });
        roles
    }

    /// Ends every long-lived client stream (watch, lease keep-alive, snapshot, lock waits):
    /// the first step of a graceful shutdown, so draining the listeners does not wait for
    /// clients that would never hang up.
    pub fn stop_streams(&self) {
        self.inner.stopping.send_replace(true);
        self.inner.hub.shutdown();
    }

    /// Whether `stop_streams` was called.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    /// Resolves once `stop_streams` was called; long-lived streams select on it.
    pub async fn stopping(&self) {
        let mut rx = self.inner.stopping.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Replicates `cmd` through raft and returns what applying it produced. Followers hand the
    /// command to the leader. For the member's own commands: apply checks no permissions.
    pub async fn propose(&self, cmd: Cmd) -> Result<Out> {
        // Boxed: proposing may propose (the quota check raises the NOSPACE alarm).
        Box::pin(self.propose_request(InternalRequest { request: Some(cmd), auth: None })).await
    }

    /// Proposes a client's command; with auth enabled, apply checks `caller`'s permissions.
    pub async fn propose_as(&self, caller: &AuthInfo, cmd: Cmd) -> Result<Out> {
        let auth = Some(caller.to_request());
        self.propose_request(InternalRequest { request: Some(cmd), auth }).await
    }

    /// Proposes a whole raft command for a client of this member (a follower's forwarded
    /// proposal keeps its caller): answered once this member has applied it.
    pub async fn propose_request(&self, req: InternalRequest) -> Result<Out> {
        self.propose_checked(req, Applied::Here).await
    }

    /// Proposes a command a follower handed over (the peer `Propose` call): answered once it
    /// is applied on the leader; the follower waits for its own apply itself. (A member that
    /// just handed its leadership over must not wait for its own apply here: it is stopping.)
    pub async fn propose_for_peer(&self, req: InternalRequest) -> Result<Out> {
        self.propose_checked(req, Applied::OnLeader).await
    }

    /// `propose_request` and `propose_for_peer`: the checks, then raft.
    async fn propose_checked(&self, req: InternalRequest, applied: Applied) -> Result<Out> {
        // A learner serves no client writes (etcd: "rpc not supported for learner"); it still
        // publishes its own attributes.
        if !matches!(req.request, Some(Cmd::MemberAttributes(_))) && self.is_learner() {
            return Err(Error::NotSupportedForLearner);
        }
        if req.encoded_len() > self.inner.config.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        self.check_backlog()?;
        let adds_data = match &req.request {
            Some(Cmd::Put(_)) | Some(Cmd::LeaseGrant(_)) => true,
            Some(Cmd::Txn(t)) => crate::apply::has_put(t),
            _ => false,
        };
        if adds_data {
            self.check_quota(req.encoded_len()).await?;
        }
        let _pending = crate::metrics::PendingProposal::start();
        match tokio::time::timeout(PROPOSE_TIMEOUT, self.propose_inner(req, applied)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Proposes through raft; on a follower, hands the command to the leader. While the
    /// leader is unknown or unreachable it waits and tries again with whoever leads then, as
    /// etcd's followers do (their proposals wait in raft for a leader): only the caller's
    /// deadline (`PROPOSE_TIMEOUT`) ends the attempts. A command is sent again only when the
    /// first attempt certainly never reached a leader's log: openraft answers
    /// `ForwardToLeader` only for entries it never committed (also for ones it appended and
    /// then had to drop), and a refused connection delivered nothing.
    async fn propose_inner(&self, req: InternalRequest, applied: Applied) -> Result<Out> {
        let mut metrics = self.inner.raft.metrics();
        let mut holding = self.inner.holding.subscribe();
        loop {
            let _ = holding.wait_for(|held| !*held).await;
            // A follower that knows its leader hands the command over at once, rather than
            // through its own batcher and raft core first only to be told `ForwardToLeader`
            // (two task hops and a raft-core round more per forwarded write).
            let leader = leader_elsewhere(&metrics.borrow_and_update(), self.inner.member_id);
            let leader = match leader {
                Some(addr) => Some(addr),
                None => match self.inner.batcher.write(req.clone()).await {
                    Ok(resp) => return into_result(resp),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(fwd))) => fwd
                        .leader_node
                        .filter(|_| fwd.leader_id != Some(self.inner.member_id))
                        .map(|node| node.addr),
                    Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                        return Err(Error::Internal(e.to_string()))
                    }
                    Err(RaftError::Fatal(_)) => return Err(Error::Stopped),
                },
            };
            if let Some(addr) = leader {
                match self.forward(&addr, req.clone(), applied).await {
                    Forwarded::Answered(result) => return result,
                    Forwarded::NotDelivered => {}
                }
            }
            // Until raft learns of a (new) leader, or a short pause for one that is restarting.
            tokio::select! {
                _ = metrics.changed() => {}
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// Sends a proposal to the leader at `addr` over the peer link.
    async fn forward(&self, addr: &str, req: InternalRequest, applied: Applied) -> Forwarded {
        let mut client = match self.peer(addr) {
            Ok(client) => client,
            Err(e) => return Forwarded::Answered(Err(e)),
        };
        match client.propose(req).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                // As etcd's proposing member waits for its own apply: a read on this member
                // right after the answer sees the write. The caller's deadline bounds it.
                if applied == Applied::Here {
                    let mut local = self.inner.applier.subscribe_applied();
                    if local.wait_for(|a| *a >= resp.applied_index).await.is_err() {
                        return Forwarded::Answered(Err(Error::Stopped));
                    }
                }
                Forwarded::Answered(into_result(crate::raft::Response(resp)))
            }
            Err(status) if not_delivered(&status) => {
                tracing::debug!(leader = addr, error = %status, "leader unreachable; proposal will be retried");
                Forwarded::NotDelivered
            }
            // The request may have reached the leader's log: whether it commits is unknown,
            // which etcd reports as a timeout.
            Err(status) => {
                tracing::warn!(leader = addr, error = %status, "forwarded proposal lost");
                Forwarded::Answered(Err(Error::Timeout))
            }
        }
    }

    /// Makes new proposals wait until the returned guard is dropped (see `Inner::holding`).
    pub fn hold_proposals(&self) -> HoldProposals {
        self.inner.holding.send_replace(true);
        HoldProposals(self.inner.holding.clone())
    }

    /// Proposals handed to raft on this member and not answered yet.
    pub fn proposals_in_flight(&self) -> usize {
        self.inner.batcher.queued()
    }

    /// etcd's back-pressure: a proposal is refused with "too many requests" while this
    /// member's applied index lags its log by more than `MAX_APPLY_LAG` entries, or while
    /// `MAX_QUEUED_PROPOSALS` proposals already wait for raft, so a member that cannot keep
    /// up sheds load instead of queueing without bound.
    fn check_backlog(&self) -> Result<()> {
        let (last, applied) = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow();
            (m.last_log_index.unwrap_or(0), m.last_applied.map(|l| l.index).unwrap_or(0))
        };
        check_apply_lag(last, applied)?;
        if self.inner.batcher.queued() >= MAX_QUEUED_PROPOSALS {
            return Err(Error::TooManyRequests);
        }
        Ok(())
    }

    /// etcd's backend quota: a write that would take the database past
    /// `--quota-backend-bytes` raises the NOSPACE alarm and fails; the alarm then keeps every
    /// data-adding write out until an operator compacts, defragments and disarms it.
    async fn check_quota(&self, request_bytes: usize) -> Result<()> {
        let size = self.inner.db_size.load(Ordering::Relaxed);
        let quota = self.inner.config.quota_bytes().max(0) as u64;
        if size.saturating_add(request_bytes as u64) <= quota {
            return Ok(());
        }
        let alarm = crate::pb::etcdserverpb::AlarmRequest {
            action: crate::pb::etcdserverpb::alarm_request::AlarmAction::Activate as i32,
            member_id: self.inner.member_id,
            alarm: crate::pb::etcdserverpb::AlarmType::Nospace as i32,
        };
        if !self.inner.cluster.no_space() {
            tracing::warn!(size, quota, "database space exceeded; raising the NOSPACE alarm");
            if let Err(e) = self.propose(Cmd::Alarm(alarm)).await {
                tracing::warn!(error = %e, "raising the NOSPACE alarm");
            }
        }
        Err(Error::NoSpace)
    }

    /// Keeps the cached applied-state size (quota checks) and the size and memory metrics
    /// current, and every few seconds hands freed heap back to the OS (see `memory`).
    async fn track_storage(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        const TICKS_PER_TRIM: u32 = 10;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let storage = self.inner.storage.clone();
            ticks = (ticks + 1) % TICKS_PER_TRIM;
            let trim = ticks == 0;
            let sizes = tokio::task::spawn_blocking(move || {
                if trim {
                    crate::storage::memory::release_free_memory();
                }
                let live = storage.live_data_bytes();
                (storage.state_size_bytes(), storage.size_bytes(), storage.memory_usage(), live)
            });
            if let Ok((state, on_disk, memory, live)) = sizes.await {
                self.inner.db_size.store(state, Ordering::Relaxed);
                crate::metrics::DB_SIZE_IN_USE.set(live as i64);
                crate::metrics::DB_SIZE.set(on_disk as i64);
                let gauge = |kind: &str, bytes: u64| {
                    crate::metrics::STORAGE_MEMORY.with_label_values(&[kind]).set(bytes as i64);
                };
                gauge("memtables", memory.memtables);
                gauge("table_readers", memory.table_readers);
                gauge("block_cache", memory.block_cache);
            }
            self.report_metrics();
        }
    }

    /// Sets the gauges read from the member's state (revisions, keys, watchers, auth and
    /// v2 store), so a scrape sees them current; cheap enough to run on every scrape.
    pub fn report_metrics(&self) {
        use crate::metrics as m;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        m::INDEX_REVISIONS.set(count(self.inner.mvcc.index_changes()));
        m::KEYS_TOTAL.set(count(self.inner.mvcc.key_count()));
        m::CURRENT_REVISION.set(self.inner.mvcc.current_revision());
        m::COMPACT_REVISION.set(self.inner.mvcc.compacted_revision());
        let auth_revision = self.inner.applier.auth().revision();
        m::AUTH_REVISION.set(i64::try_from(auth_revision).unwrap_or(i64::MAX));
        let v2_watchers = self.inner.applier.v2().stats().watchers;
        m::V2_WATCHERS.set(i64::try_from(v2_watchers).unwrap_or(i64::MAX));
        self.inner.hub.report_metrics();
        let members: Vec<u64> = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().nodes().map(|(id, _)| *id).collect()
        };
        m::set_known_peers(self.inner.member_id, members);
    }

    /// Returns once this member has applied every write committed before the call: the
    /// leader confirms leadership with a quorum (ReadIndex); a follower asks the leader for
    /// that index and waits to apply it.
    pub async fn linearizable_read(&self) -> Result<()> {
        if self.is_learner() {
            return Err(Error::NotSupportedForLearner);
        }
        self.sync_to_read_index().await
    }

    /// `linearizable_read` without the learner refusal: etcd's health check reads below the
    /// gRPC layer that turns learners away, so a learner that can get a read index from the
    /// leader and apply up to it is healthy.
    pub async fn sync_to_read_index(&self) -> Result<()> {
        let fut = async {
            let index = self.read_index().await?;
            let mut applied = self.inner.applier.subscribe_applied();
            applied.wait_for(|a| *a >= index).await.map_err(|_| Error::Stopped)?;
            Ok(())
        };
        tokio::time::timeout(PROPOSE_TIMEOUT, fut).await.unwrap_or(Err(Error::Timeout))
    }

    /// The log index a linearizable read must wait for, as the leader sees it. Concurrent
    /// callers share rounds (see `read_index`).
    pub async fn read_index(&self) -> Result<u64> {
        if self.leads_alone() {
            return Ok(*self.inner.applier.subscribe_applied().borrow());
        }
        let this = self.clone();
        let index = self
            .inner
            .read_batcher
            .read_index(move || {
                let this = this.clone();
                async move { this.read_index_round().await }
            })
            .await;
        if index.is_err() {
            crate::metrics::READ_INDEXES_FAILED.inc();
        }
        index
    }

    /// Whether this member leads, is the only voter, and has applied an entry of its own term.
    /// Then no quorum needs asking: no other member can lead before this one commits a
    /// configuration with more voters (and then waits out an election timeout without its
    /// heartbeats, far longer than its metrics take to show the new configuration). Its term's
    /// first entry (raft's no-op) being applied means everything an earlier leader committed is
    /// applied too, and every write acknowledged since was applied here before its answer, so
    /// the applied index already answers a linearizable read.
    fn leads_alone(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let me = self.inner.member_id;
        m.state == openraft::ServerState::Leader
            && m.current_leader == Some(me)
            && m.last_applied.is_some_and(|applied| applied.leader_id.term == m.current_term)
            && membership.get_joint_config().len() == 1
            && membership.voter_ids().eq([me])
    }

    /// One ReadIndex round: the leader's own, or asked of the leader by a follower. While the
    /// leader is unknown or unreachable it waits for one (the caller's deadline bounds it),
    /// as etcd's read loop retries; a leader that answers but loses its leadership on the way
    /// is etcd's "leader changed".
    async fn read_index_round(&self) -> Result<u64> {
        let mut metrics = self.inner.raft.metrics();
        loop {
            metrics.borrow_and_update();
            // Only the index: the caller waits for apply on the applier's own watch.
            match self.inner.raft.get_read_log_id().await {
                Ok((log_id, _applied)) => return Ok(log_id.map(|l| l.index).unwrap_or(0)),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(
                    fwd,
                ))) => {
                    if let Some(node) =
                        fwd.leader_node.filter(|_| fwd.leader_id != Some(self.inner.member_id))
                    {
                        let mut client = self.peer(&node.addr)?;
                        match client.read_index(Empty {}).await {
                            Ok(resp) => return Ok(resp.into_inner().index),
                            Err(status) if not_delivered(&status) => {}
                            Err(status) => return Err(leader_read_index_error(&status)),
                        }
                    }
                }
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::QuorumNotEnough(
                    _,
                ))) => return Err(Error::Timeout),
                Err(RaftError::Fatal(_)) => return Err(Error::Stopped),
            }
            // etcd counts a ReadIndex it must ask again as slow.
            crate::metrics::SLOW_READ_INDEXES.inc();
            tokio::select! {
                _ = metrics.changed() => {}
                _ = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// Whether raft holds this member as a learner (no vote, no client writes).
    pub fn is_learner(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let is_learner =
            m.membership_config.membership().learner_ids().any(|id| id == self.inner.member_id);
        is_learner
    }

    /// A gRPC client for the member at `addr` (a peer URL), reused across calls.
    pub fn peer(&self, addr: &str) -> Result<RaftPeerClient<Channel>> {
        let mut peers = self.inner.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = peers.get(addr) {
            return Ok(c.clone());
        }
        let channel = peer_channel(addr).map_err(|e| Error::internal("peer url", e))?;
        let client = RaftPeerClient::new(channel);
        peers.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// The leader's peer client, or `None` when this member leads.
    pub fn leader_peer(&self) -> Result<Option<RaftPeerClient<Channel>>> {
        // Borrowed, not cloned: this runs for every forwarded keep-alive.
        let addr = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow();
            let leader = self.followed_leader(&m).ok_or(Error::NoLeader)?;
            if leader == self.inner.member_id {
                return Ok(None);
            }
            peer_url(&m, leader).ok_or(Error::NoLeader)?
        };
        self.peer(&addr).map(Some)
    }

    /// A client channel to the leader's client URL (for Cluster API calls, which only the
    /// leader can carry out), or `None` when this member leads.
    pub fn leader_client(&self) -> Result<Option<Channel>> {
        let leader = self.inner.raft.metrics().borrow().current_leader.ok_or(Error::NoLeader)?;
        if leader == self.inner.member_id {
            return Ok(None);
        }
        let url = self
            .inner
            .cluster
            .member(leader)
            .and_then(|m| m.client_urls.first().cloned())
            .ok_or(Error::NoLeader)?;
        crate::tls::client::channel(&url, crate::tls::client::Dial::Client)
            .map(Some)
            .map_err(|e| Error::internal("leader client url", e))
    }

    /// A fresh id for a lease the client did not name: etcd's scheme (member bits, time,
    /// counter), positive as an int64.
    pub fn next_id(&self) -> i64 {
        loop {
            let raw = self.inner.id_gen.fetch_add(1, Ordering::Relaxed) + 1;
            let id = (raw & ((1u64 << 63) - 1)) as i64;
            if id != 0 {
                return id;
            }
        }
    }

    /// The response-header stamp.
    pub fn headers(&self) -> &Headers {
        &self.inner.headers
    }
    /// The configuration the member runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    /// The MVCC store (reads).
    pub fn mvcc(&self) -> &Arc<MvccStore> {
        &self.inner.mvcc
    }
    /// The lease table (timers and status).
    pub fn lessor(&self) -> &Arc<Lessor> {
        &self.inner.lessor
    }
    /// Members' attributes and alarms.
    pub fn cluster(&self) -> &Arc<ClusterState> {
        &self.inner.cluster
    }
    /// The watch hub.
    pub fn hub(&self) -> &Arc<WatchHub> {
        &self.inner.hub
    }
    /// The auth store (users, roles, tokens, permission checks).
    pub fn auth(&self) -> &Arc<AuthStore> {
        self.inner.applier.auth()
    }
    /// The raft handle.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }
    /// The database.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }
    /// The applier (read-only txns).
    pub fn applier(&self) -> &Arc<Applier> {
        &self.inner.applier
    }
    /// The state machine (snapshots).
    pub fn state_machine(&self) -> &StateMachine {
        &self.inner.state_machine
    }
    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.inner.member_id
    }
    /// This member's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Keeps the header's raft term and the leader gauges current, and re-arms lease timers
    /// whenever this member becomes leader (etcd's lessor promotion).
    async fn observe_raft(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut metrics = self.inner.raft.metrics();
        let mut lost = self.inner.leader_contact.subscribe_lost();
        let mut was_leader = false;
        loop {
            let m = metrics.borrow_and_update().clone();
            lost.borrow_and_update();
            self.inner.headers.set_raft_term(m.current_term);
            let is_leader = m.current_leader == Some(self.inner.member_id);
            crate::metrics::HAS_LEADER.set(i64::from(self.followed_leader(&m).is_some()));
            crate::metrics::IS_LEADER.set(i64::from(is_leader));
            let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
            crate::metrics::PROPOSALS_APPLIED.set(i64::try_from(applied).unwrap_or(i64::MAX));
            let is_learner =
                m.membership_config.membership().learner_ids().any(|id| id == self.inner.member_id);
            crate::metrics::IS_LEARNER.set(i64::from(is_learner));
            if is_leader && !was_leader {
                self.inner.lessor.rearm_all();
                crate::metrics::LEADER_CHANGES.inc();
            }
            was_leader = is_leader;
            let membership = m.membership_config.membership();
            let is_member = membership.get_node(&self.inner.member_id).is_some();
            if m.membership_config.log_id().is_some() && !is_member && m.current_leader.is_some() {
                tracing::warn!("{}; shutting down", Error::MemberRemoved);
                self.inner.removed.send_replace(true);
                return;
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                changed = lost.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The leader as clients see it: none once this member stopped hearing from its leader
    /// and started asking for votes (`LeaderContact`), as etcd's pre-candidate has none.
    fn followed_leader(&self, m: &RaftMetrics<u64, BasicNode>) -> Option<u64> {
        let me = self.inner.member_id;
        m.current_leader.filter(|l| *l == me || !self.inner.leader_contact.is_lost())
    }

    /// The leader revokes leases whose timers ran out, through raft.
    async fn expire_leases(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if self.inner.raft.metrics().borrow().current_leader != Some(self.inner.member_id) {
                continue;
            }
            for id in self.inner.lessor.expired(EXPIRE_BATCH) {
                match self.propose(Cmd::LeaseExpire(LeaseExpire { id })).await {
                    Ok(_) => crate::metrics::LEASE_EXPIRED.inc(),
                    Err(e) => {
                        tracing::warn!(lease = id, error = %e, "failed to revoke expired lease")
                    }
                }
            }
        }
    }

    /// Publishes this member's name and client URLs through raft until it sticks, as etcd's
    /// `publish` does after start.
    async fn publish_attributes(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let attrs = MemberAttributes {
            id: self.inner.member_id,
            name: self.inner.name.clone(),
            peer_urls: Config::urls(&self.inner.config.initial_advertise_peer_urls),
            client_urls: Config::urls(&self.inner.config.advertise_client_urls),
            pending_voter: false,
        };
        let published = self.inner.cluster.member(self.inner.member_id).is_some_and(|m| {
            m.name == attrs.name
                && m.peer_urls == attrs.peer_urls
                && m.client_urls == attrs.client_urls
        });
        if published {
            self.inner.ready.send_replace(true);
            return;
        }
        loop {
            match self.propose(Cmd::MemberAttributes(attrs.clone())).await {
                Ok(_) => {
                    self.inner.ready.send_replace(true);
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "publishing member attributes; will retry"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Resolves once the member has published its attributes, as etcd's `ReadyNotify`: until
    /// then `member list` would show it unstarted, so clients are not served yet (their
    /// connections wait in the listen backlog, as with etcd).
    pub async fn ready(&self) {
        let mut rx = self.inner.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Resolves when this member has been removed from the cluster (it then stops, as etcd's
    /// removed members do).
    pub async fn removed(&self) {
        let mut rx = self.inner.removed.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Follows this member's applied index (waiting for a write's effects to be visible here).
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.applier.subscribe_applied()
    }

    /// Runs a txn that only reads, against the applied state, off the async workers (it
    /// reads RocksDB under the store's lock). The caller decides about linearizability.
    pub async fn read_only_txn(
        &self,
        req: crate::pb::etcdserverpb::TxnRequest,
    ) -> Result<crate::pb::etcdserverpb::TxnResponse> {
        let applier = self.inner.applier.clone();
        tokio::task::spawn_blocking(move || applier.read_only_txn(&req))
            .await
            .map_err(|e| Error::internal("txn", e))?
    }

    /// Raft's view of this member, for `endpoint status`.
    pub fn raft_status(&self) -> RaftStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let status = RaftStatus {
            leader: self.followed_leader(&m).unwrap_or(0),
            term: m.current_term,
            last_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            is_learner: m
                .membership_config
                .membership()
                .learner_ids()
                .any(|id| id == self.inner.member_id),
            role: match m.state {
                openraft::ServerState::Leader => RaftRole::Leader,
                openraft::ServerState::Candidate => RaftRole::Candidate,
                _ => RaftRole::Follower,
            },
        };
        status
    }

    /// The ids of the members raft replicates to (voters and learners), as its membership
    /// configuration has them.
    pub fn raft_node_ids(&self) -> Vec<u64> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let ids = m.membership_config.membership().nodes().map(|(id, _)| *id).collect();
        ids
    }

    /// The database's size on disk (etcd's `dbSize`).
    pub fn db_size_bytes(&self) -> u64 {
        self.inner.storage.size_bytes()
    }

    /// When this member last heard from a leader (pre-vote's clock).
    pub fn leader_contact(&self) -> &LeaderContact {
        &self.inner.leader_contact
    }

    /// The election timing from `--election-timeout` and `--heartbeat-interval`.
    pub fn election_timing(&self) -> ElectionTiming {
        let (min, max) = self.inner.config.raft_election_timeouts();
        ElectionTiming {
            min: Duration::from_millis(min),
            max: Duration::from_millis(max),
            heartbeat: Duration::from_millis(self.inner.config.heartbeat_interval),
        }
    }

    /// The raft traffic counts behind etcd's `/v2/stats/leader` and `/v2/stats/self`.
    pub fn peer_stats(&self) -> &PeerStats {
        &self.inner.peer_stats
    }

    /// Compacts every column family (etcd's defragment), off the async workers.
    pub async fn defragment(&self) -> Result<()> {
        let storage = self.inner.storage.clone();
        let _inflight = crate::metrics::InFlight::start(&crate::metrics::DEFRAG_INFLIGHT);
        let _timer = crate::metrics::DEFRAG_DURATION.start_timer();
        let state = tokio::task::spawn_blocking(move || {
            storage.compact_all();
            storage.state_size_bytes()
        })
        .await
        .map_err(|e| Error::internal("defragment", e))?;
        // The quota check must see the space just freed (etcd's is exact), not wait for the
        // next background sample: an operator disarms NOSPACE right after defragmenting.
        self.inner.db_size.store(state, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the applied state as etcd's snapshot file to an unlinked temporary file;
    /// returns it with its size (see `snapshot_file::export`).
    pub async fn snapshot_file(&self) -> Result<(std::fs::File, u64)> {
        let storage = self.inner.storage.clone();
        let _timer = crate::metrics::BACKEND_SNAPSHOT_DURATION.start_timer();
        tokio::task::spawn_blocking(move || crate::snapshot_file::export::write_temp(&storage))
            .await
            .map_err(|e| Error::internal("snapshot", e))?
    }

    /// Resolves, with the reason, if raft's core stops on its own: a storage failure or a
    /// panic inside openraft. The member can then serve nothing; etcd's process would have
    /// died, so the caller stops this one with an error.
    pub async fn raft_failed(&self) -> String {
        let mut metrics = self.inner.raft.metrics();
        let reason = match metrics.wait_for(|m| m.running_state.is_err()).await {
            Ok(m) => match &m.running_state {
                Err(fatal) => fatal.to_string(),
                Ok(()) => String::from("stopped"),
            },
            // The core dropped its metrics without reporting: it panicked.
            Err(_) => String::from("panicked"),
        };
        reason
    }

    /// Resolves, with the reason, if the propose batcher ends before `shutdown`: a batch's
    /// task panicked, so no write could be answered any more. The caller stops the member
    /// with an error rather than serve a member that cannot write. Cancel-safe.
    pub async fn batcher_failed(&self) -> String {
        let mut task = self.inner.batcher_task.lock().await;
        match task.ended().await {
            Ok(()) => String::from("the propose batcher stopped"),
            Err(e) => e.to_string(),
        }
    }

    /// Stops raft, then the propose batcher (proposals still queued are answered "server
    /// stopped"); the database closes when the last handle drops.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        let mut batcher = self.inner.batcher_task.lock().await;
        if let Err(e) = batcher.stop(Duration::from_secs(2)).await {
            tracing::error!(error = %e, "propose batcher at shutdown");
        }
        if let Err(e) = self.inner.storage.sync_wal() {
            tracing::warn!(error = %e, "final WAL sync");
        }
    }
}

/// Raft's view of a member, as `endpoint status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    /// The leader's id, 0 when there is none.
    pub leader: u64,
    /// The current raft term.
    pub term: u64,
    /// The last index in this member's log.
    pub last_index: u64,
    /// The last index this member applied.
    pub applied_index: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
    /// Whether this member leads, campaigns or follows (`/v2/stats/self`'s state).
    pub role: RaftRole,
}

/// A member's raft role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftRole {
    /// It leads.
    Leader,
    /// It campaigns for leadership.
    Candidate,
    /// It follows (learners too).
    Follower,
}

/// Holds new proposals back while it lives (see `EtcdServer::hold_proposals`); dropping it,
/// on every path, lets them go on.
pub struct HoldProposals(tokio::sync::watch::Sender<bool>);

impl Drop for HoldProposals {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// Where a proposal's answer waits for its command to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// On this member too (its client's next read here must see the write).
    Here,
    /// On the leader only (the follower that handed it over waits for its own apply).
    OnLeader,
}

/// What became of a proposal forwarded to the leader.
enum Forwarded {
    /// The leader answered (its apply result or its refusal), or the outcome is unknown.
    Answered(Result<Out>),
    /// It certainly never reached the leader: sending it again cannot apply it twice.
    NotDelivered,
}

/// What a follower's linearizable read fails with when the leader refused its ReadIndex: the
/// leader's own typed error (`peer_error`: e.g. `Timeout` when it cannot reach a quorum), but
/// "leader changed" when the member asked is stopping or no longer leads, or when the answer
/// carries no error code (the call broke on the way): the read may succeed with the next
/// leader.
fn leader_read_index_error(status: &tonic::Status) -> Error {
    match peer_error(status) {
        Some(Error::Stopped | Error::NoLeader | Error::NotLeader) | None => Error::LeaderChanged,
        Some(e) => e,
    }
}

/// The peer URL of the leader raft names, when that is another member.
fn leader_elsewhere(m: &RaftMetrics<u64, BasicNode>, me: u64) -> Option<String> {
    peer_url(m, m.current_leader.filter(|l| *l != me)?)
}

/// The peer URL of member `id` in raft's membership.
fn peer_url(m: &RaftMetrics<u64, BasicNode>, id: u64) -> Option<String> {
    m.membership_config.membership().get_node(&id).map(|node| node.addr.clone())
}

/// Whether a failed peer call certainly never reached the peer: the connection could not be
/// made (tonic keeps the cause, a `ConnectError`, in the status's source chain).
fn not_delivered(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// etcd's `maxGapBetweenApplyAndCommitIndex`: how far applying may lag the log before
/// proposals are refused.
pub const MAX_APPLY_LAG: u64 = 5000;

/// Proposals that may wait for raft at once on one member (each is a client request held
/// open); beyond it new proposals are refused with "too many requests".
pub const MAX_QUEUED_PROPOSALS: usize = 10_000;

/// Refuses a proposal when the applied index `applied` lags the log's `last` index by more
/// than `MAX_APPLY_LAG`, as etcd does.
fn check_apply_lag(last: u64, applied: u64) -> Result<()> {
    if last > applied.saturating_add(MAX_APPLY_LAG) {
        return Err(Error::TooManyRequests);
    }
    Ok(())
}

/// The initial members named by `--initial-cluster`, with etcd's member ids.
fn initial_ids(config: &Config) -> anyhow::Result<Vec<(u64, String, Vec<String>)>> {
    let initial = config.initial_members().map_err(anyhow::Error::msg)?;
    Ok(initial
        .into_iter()
        .map(|(name, urls)| {
            (cluster::member_id(&urls, &config.initial_cluster_token, None), name, urls)
        })
        .collect())
}

/// This member's id and its cluster's: remembered from the first start; on a first start
/// derived from `--initial-cluster` (state `new`, as etcd does) or learned from the running
/// cluster's peers (state `existing`, after `member add`).
async fn identity(config: &Config, storage: &Storage) -> anyhow::Result<(u64, u64)> {
    let meta = storage.cf(Cf::RaftMeta);
    let db = storage.db();
    let read = |key: &[u8]| -> anyhow::Result<Option<u64>> {
        match db.get_cf(meta, key)? {
            Some(b) => {
                let arr: [u8; 8] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("corrupt member identity"))?;
                Ok(Some(u64::from_be_bytes(arr)))
            }
            None => Ok(None),
        }
    };
    if let (Some(member), Some(cluster)) =
        (read(raft_meta_keys::MEMBER_ID)?, read(raft_meta_keys::CLUSTER_ID)?)
    {
        return Ok((member, cluster));
    }
    let peer_urls = Config::urls(&config.initial_advertise_peer_urls);
    let initial = initial_ids(config)?;
    let (member, cluster) = if config.initial_cluster_state == "new" {
        let member = cluster::member_id(&peer_urls, &config.initial_cluster_token, None);
        if !initial.iter().any(|(id, _, _)| *id == member) {
            anyhow::bail!(
                "couldn't find local name {:?} in the initial cluster configuration (--initial-cluster={}) with matching peer URLs {:?}",
                config.name,
                config.initial_cluster(),
                peer_urls
            );
        }
        let ids: Vec<u64> = initial.iter().map(|(id, _, _)| *id).collect();
        (member, cluster::cluster_id(&ids))
    } else {
        join_existing(config, &peer_urls, &initial).await?
    };
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(meta, raft_meta_keys::MEMBER_ID, member.to_be_bytes());
    batch.put_cf(meta, raft_meta_keys::CLUSTER_ID, cluster.to_be_bytes());
    let mut opts = rocksdb::WriteOptions::default();
    // Synced: a member must never come back under another identity.
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    Ok((member, cluster))
}

/// Asks the other members named in `--initial-cluster` who we are.
async fn join_existing(
    config: &Config,
    peer_urls: &[String],
    initial: &[(u64, String, Vec<String>)],
) -> anyhow::Result<(u64, u64)> {
    let others: Vec<String> = initial
        .iter()
        .flat_map(|(_, _, urls)| urls.clone())
        .filter(|u| !peer_urls.contains(u))
        .collect();
    if others.is_empty() {
        anyhow::bail!("--initial-cluster-state=existing needs --initial-cluster to name at least one running member");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last_err = String::new();
    loop {
        for url in &others {
            let Ok(channel) = peer_channel(url) else { continue };
            let mut client = RaftPeerClient::new(channel);
            // Bounded per peer: a peer that accepts the connection but never answers (another
            // member still joining, its listener bound before it serves) must not hold the
            // whole join; the loop moves on to the next peer.
            let answer =
                tokio::time::timeout(Duration::from_secs(3), client.cluster_info(Empty {})).await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(_) => {
                    last_err = format!("{url}: no answer within 3s");
                    continue;
                }
            };
            match answer {
                Ok(resp) => {
                    let info = resp.into_inner();
                    if info.token != config.initial_cluster_token {
                        anyhow::bail!(
                            "cluster token mismatch: this member has --initial-cluster-token={:?} but the cluster at {url} uses {:?}",
                            config.initial_cluster_token,
                            info.token
                        );
                    }
                    let me = info
                        .members
                        .iter()
                        .find(|m| m.peer_urls.iter().any(|u| peer_urls.contains(u)));
                    return match me {
                        // A member that has published its client URLs has run before: with its
                        // data gone it would rejoin under an id whose log the leader already
                        // counts as replicated (openraft's leader panics on that reversion).
                        // etcd refuses the same start; the member must be removed and added anew.
                        Some(m) if !m.client_urls.is_empty() => anyhow::bail!(
                            "member {:x} has already been bootstrapped",
                            m.id
                        ),
                        Some(m) => Ok((m.id, info.cluster_id)),
                        None => anyhow::bail!(
                            "peer URLs {peer_urls:?} are not a member of the cluster at {url}: run `etcdctl member add` first"
                        ),
                    };
                }
                Err(status) => last_err = format!("{url}: {}", status.message()),
            }
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("could not reach any member of the existing cluster ({last_err})");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

impl PreVoteDialer for EtcdServer {
    fn client(&self, addr: &str) -> Option<RaftPeerClient<Channel>> {
        self.peer(addr).ok()
    }

    fn removal_signal(&self) -> &tokio::sync::watch::Sender<bool> {
        &self.inner.removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_are_refused_when_apply_lags_too_far() {
        assert_eq!(check_apply_lag(100, 100), Ok(()));
        assert_eq!(check_apply_lag(5100, 100), Ok(()));
        assert_eq!(check_apply_lag(5101, 100), Err(Error::TooManyRequests));
        assert_eq!(Error::TooManyRequests.to_string(), "etcdserver: too many requests");
    }

    /// A follower's read fails with the leader's typed error, but with "leader changed" when
    /// the leader is going away or the answer carries no code.
    #[test]
    fn leader_read_index_refusals_keep_their_type() {
        use crate::raft::network::peer_status;
        let status = |e: Error| peer_status(tonic::Code::Unavailable, &e);
        assert_eq!(leader_read_index_error(&status(Error::Timeout)), Error::Timeout);
        assert_eq!(leader_read_index_error(&status(Error::Stopped)), Error::LeaderChanged);
        assert_eq!(leader_read_index_error(&status(Error::NoLeader)), Error::LeaderChanged);
        let untyped = tonic::Status::unavailable("etcdserver: request timed out");
        assert_eq!(leader_read_index_error(&untyped), Error::LeaderChanged);
    }
}
