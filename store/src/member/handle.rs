//! The one interface the client-facing edge (`api/`, `v2_api/`, `http.rs`) has to the member.
//!
//! A [`Member`] offers what a handler needs — propose a command, wait for a linearizable
//! read, read the applied state (ranges, read-only txns, leases, auth, members, alarms, the
//! v2 store), open a watch stream, report status, change membership — and nothing more: it
//! never hands out the stores, raft or RocksDB behind it, so a handler cannot bypass the
//! permission checks and the off-the-async-workers rule for RocksDB reads that live here.
//! `store/tests/layers.rs` keeps the edge on this module: it may import nothing else of the
//! member or below it. The value types a handler needs from lower layers are re-exported
//! here.

use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::member::membership;
use crate::member::server::EtcdServer;
use crate::pb::authpb::Permission;
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::{
    AlarmMember, AuthenticateRequest, AuthenticateResponse, Member as PbMember, RangeRequest,
    RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::pb::oxcdpb::{AuthenticateCommand, KeepAliveRequest, TimeToLiveRequest};

pub use crate::apply::{is_read_only, is_serializable};
pub use crate::auth::{untranslated as untranslated_auth_error, AuthInfo};
pub use crate::lease::{LeaseStatus, MAX_LEASE_TTL};
pub use crate::member::headers::Headers;
pub use crate::member::server::{RaftRole, RaftStatus};
pub use crate::mvcc::KeyRange;
pub use crate::raft::peer_stats::PeerStats;
pub use crate::v2::store::Stats as V2Stats;
pub use crate::v2::store::Watch as V2Watch;
pub use crate::watch::{fragment, WatchControl, WatchReceiver};

/// How long `authenticate` waits for this member to apply the token it hands out, so the
/// client's next request here finds it.
const TOKEN_APPLY_WAIT: Duration = Duration::from_secs(5);

/// Ranges returning at most this many keys read RocksDB on the calling task: a few point
/// lookups (mostly from the block cache) cost less than the hop to a blocking thread and
/// back, which would dominate the latency of `get`. Larger reads go to the blocking pool so
/// they never hold an async worker.
const INLINE_RANGE_KEYS: i64 = 16;

/// The member as the client-facing edge sees it. Cheap to clone.
#[derive(Clone)]
pub struct Member {
    server: EtcdServer,
}

impl Member {
    /// The edge's view of a running member (built once by `serve/`).
    pub fn new(server: EtcdServer) -> Member {
        Member { server }
    }

    // ---- identity, headers, configuration ----

    /// The response-header stamp (cluster, member, raft term).
    pub fn headers(&self) -> &Headers {
        self.server.headers()
    }

    /// A response header at the current revision, as most of etcd's answers carry.
    pub fn header(&self) -> ResponseHeader {
        self.headers().make(self.current_revision())
    }

    /// The newest applied revision of the keys.
    pub fn current_revision(&self) -> i64 {
        self.server.mvcc().current_revision()
    }

    /// The flags the member runs with (limits such as `--max-txn-ops`).
    pub fn config(&self) -> &crate::config::Config {
        self.server.config()
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.server.member_id()
    }

    /// This member's name.
    pub fn name(&self) -> &str {
        self.server.name()
    }

    // ---- writes and linearizability ----

    /// Replicates a command of the member's own (apply checks no permissions).
    pub async fn propose(&self, cmd: Cmd) -> Result<Out> {
        self.server.propose(cmd).await
    }

    /// Replicates a client's command; with auth enabled, apply checks `caller`'s permissions.
    pub async fn propose_as(&self, caller: &AuthInfo, cmd: Cmd) -> Result<Out> {
        self.server.propose_as(caller, cmd).await
    }

    /// Returns once this member has applied every write committed before the call.
    pub async fn linearizable_read(&self) -> Result<()> {
        self.server.linearizable_read().await
    }

    /// `linearizable_read` without the learner refusal (etcd's health check).
    pub async fn sync_to_read_index(&self) -> Result<()> {
        self.server.sync_to_read_index().await
    }

    /// Follows this member's applied index (to wait for a write's effects here).
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.server.subscribe_applied()
    }

    /// Resolves once the member starts shutting down; long-lived streams select on it.
    pub async fn stopping(&self) {
        self.server.stopping().await
    }

    /// Whether the member is shutting down.
    pub fn is_stopping(&self) -> bool {
        self.server.is_stopping()
    }

    // ---- reads of the applied state ----

    /// etcd's `doSerialize` for a range: `caller`'s READ permission is checked before the
    /// read, and the answer is refused if the auth store changed while it was read. Small
    /// reads run inline; larger ones off the async workers. The caller decides about
    /// linearizability.
    pub async fn range(&self, caller: &AuthInfo, req: RangeRequest) -> Result<RangeResponse> {
        let auth = self.server.auth();
        auth.check_range(caller, &req.key, &req.range_end)?;
        let mvcc = self.server.mvcc().clone();
        let resp = if is_small_read(&req) {
            mvcc.range(&req)?
        } else {
            tokio::task::spawn_blocking(move || mvcc.range(&req))
                .await
                .map_err(|e| Error::internal("range", e))??
        };
        auth.check_unchanged(caller)?;
        Ok(resp)
    }

    /// A txn that only reads (see `is_read_only`), checked as a range is (every compare and
    /// range of both branches), run off the async workers.
    pub async fn read_only_txn(&self, caller: &AuthInfo, req: TxnRequest) -> Result<TxnResponse> {
        let auth = self.server.auth();
        auth.check_txn(caller, &req)?;
        let resp = self.server.read_only_txn(req).await?;
        auth.check_unchanged(caller)?;
        Ok(resp)
    }

    /// etcd's `HashKV` at `rev` (0: now): the hash, the compact revision, the current
    /// revision. Off the async workers.
    pub async fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        let mvcc = self.server.mvcc().clone();
        tokio::task::spawn_blocking(move || mvcc.hash_kv(rev))
            .await
            .map_err(|e| Error::internal("hash", e))?
    }

    /// The alarms raised in the cluster.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.server.cluster().alarms()
    }

    // ---- leases ----

    /// A fresh lease id (etcd's scheme) for a grant that names none.
    pub fn next_lease_id(&self) -> i64 {
        self.server.next_id()
    }

    /// Renews a lease on the leader; returns its TTL, or 0 if it does not exist (etcd's
    /// answer). A follower asks the leader, whose timers are the ones that count.
    pub async fn keep_alive(&self, id: i64) -> Result<i64> {
        match self.server.leader_peer()? {
            None => match self.server.lessor().renew(id) {
                Ok(ttl) => Ok(ttl),
                Err(Error::LeaseNotFound) => Ok(0),
                Err(e) => Err(e),
            },
            Some(mut leader) => {
                let resp = leader
                    .lease_keep_alive(KeepAliveRequest { id })
                    .await
                    .map_err(|_| Error::LeaderChanged)?;
                Ok(resp.into_inner().ttl)
            }
        }
    }

    /// A lease's status as the leader's timers see it.
    pub async fn time_to_live(&self, id: i64) -> Result<Option<LeaseStatus>> {
        match self.server.leader_peer()? {
            None => Ok(self.server.lessor().status(id)),
            Some(mut leader) => {
                let resp = leader
                    .lease_time_to_live(TimeToLiveRequest { id })
                    .await
                    .map_err(|_| Error::LeaderChanged)?
                    .into_inner();
                Ok(resp.found.then_some(LeaseStatus {
                    remaining: resp.remaining,
                    granted: resp.granted,
                    keys: resp.keys,
                }))
            }
        }
    }

    /// The ids of the leases this member has applied.
    pub fn lease_ids(&self) -> Vec<i64> {
        self.server.lessor().ids()
    }

    // ---- auth ----

    /// Who sent a request (etcd's `AuthInfoFromCtx`): the user of its token, or no user. An
    /// unknown or expired token fails with `InvalidAuthToken`, whether or not auth is
    /// enabled, as in etcd.
    pub async fn caller(&self, metadata: &MetadataMap) -> Result<AuthInfo> {
        self.server.auth().user_from(metadata).await
    }

    /// Fails unless `caller` holds the root role (or auth is disabled).
    pub fn check_admin(&self, caller: &AuthInfo) -> Result<()> {
        self.server.auth().check_admin(caller)
    }

    /// etcd's `isWatchPermitted`: whether the token in `metadata` may watch the range.
    pub fn check_watch(&self, metadata: &MetadataMap, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.server.auth().check_watch(metadata, key, range_end)
    }

    /// Whether auth is enabled.
    pub fn auth_enabled(&self) -> bool {
        self.server.auth().is_enabled()
    }

    /// Whether auth is enabled, and the auth store's revision.
    pub fn auth_status(&self) -> (bool, u64) {
        self.server.auth().status()
    }

    /// The roles of user `name`.
    pub fn user_roles(&self, name: &str) -> Result<Vec<String>> {
        self.server.auth().user_roles(name)
    }

    /// Every user's name.
    pub fn user_names(&self) -> Vec<String> {
        self.server.auth().user_names()
    }

    /// Every role's name.
    pub fn role_names(&self) -> Vec<String> {
        self.server.auth().role_names()
    }

    /// Whether `user` holds `role`.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.server.auth().has_role(user, role)
    }

    /// The permissions of role `name`.
    pub fn role_permissions(&self, name: &str) -> Result<Vec<Permission>> {
        self.server.auth().role_permissions(name)
    }

    /// The bcrypt hash of `password` (base64, etcd's `hashedPassword`) at the member's
    /// `--bcrypt-cost`, computed off the async workers.
    pub async fn hash_password(&self, password: String) -> Result<String> {
        let cost = self.config().bcrypt_cost;
        tokio::task::spawn_blocking(move || crate::auth::hash_password(&password, cost))
            .await
            .map_err(|e| Error::internal("password hash", e))?
    }

    /// etcd's `Authenticate`: check the password here (off the async workers), then make a
    /// token known to every member through raft; retry if the auth store changed meanwhile.
    /// Waits (bounded) until this member applied the token, so the client's next request
    /// here finds it. The caller has made the read linearizable.
    pub async fn authenticate(&self, req: AuthenticateRequest) -> Result<AuthenticateResponse> {
        loop {
            let auth = self.server.auth().clone();
            let (name, password) = (req.name.clone(), req.password.clone());
            let checked =
                tokio::task::spawn_blocking(move || auth.check_password(&name, &password))
                    .await
                    .map_err(|e| Error::internal("password check", e))?;
            let checked = match checked {
                Ok(revision) => revision,
                Err(e) => {
                    if e != Error::AuthNotEnabled {
                        tracing::warn!(user = %req.name, error = %e, "invalid authentication was requested");
                    }
                    return Err(e);
                }
            };
            let cmd = Cmd::Authenticate(AuthenticateCommand {
                name: req.name.clone(),
                token: crate::auth::token::random_prefix(),
            });
            let resp = match self.server.propose(cmd).await? {
                Out::Authenticate(resp) => resp,
                other => return Err(unexpected(other)),
            };
            if checked != self.server.auth().revision() {
                tracing::info!("revision when password checked became stale; retrying");
                continue;
            }
            if let Some(index) = crate::auth::token::index_of(&resp.token) {
                let mut applied = self.server.subscribe_applied();
                let _ =
                    tokio::time::timeout(TOKEN_APPLY_WAIT, applied.wait_for(|a| *a >= index)).await;
            }
            return Ok(resp);
        }
    }

    // ---- watch ----

    /// A new watch stream on this member's hub: the control half takes the client's
    /// requests, the receiver yields the responses.
    pub fn open_watch_stream(&self) -> (WatchControl, WatchReceiver) {
        self.server.hub().open_stream()
    }

    /// The size above which a fragmenting watcher's responses are split.
    pub fn watch_fragment_limit(&self) -> usize {
        self.server.hub().fragment_limit()
    }

    // ---- status and maintenance ----

    /// Raft's view of this member, for `endpoint status`.
    pub fn raft_status(&self) -> RaftStatus {
        self.server.raft_status()
    }

    /// Brings the gauges read from the member's state up to date (before a scrape).
    pub fn report_metrics(&self) {
        self.server.report_metrics();
    }

    /// The database's size on disk (etcd's `dbSize`).
    pub fn db_size_bytes(&self) -> u64 {
        self.server.db_size_bytes()
    }

    /// Compacts the database (etcd's defragment), off the async workers.
    pub async fn defragment(&self) -> Result<()> {
        self.server.defragment().await
    }

    /// The applied state as etcd's snapshot file, in an unlinked temporary file, with its size.
    pub async fn snapshot_file(&self) -> Result<(std::fs::File, u64)> {
        self.server.snapshot_file().await
    }

    /// Hands leadership to member `target` (etcd's `MoveLeader`).
    pub async fn move_leader(&self, target: u64) -> Result<()> {
        membership::move_leader(&self.server, target).await
    }

    // ---- membership ----

    /// The cluster's members, as `member list` shows them.
    pub fn members(&self) -> Vec<PbMember> {
        membership::list(&self.server)
    }

    /// A client channel to the leader's client URL (membership changes are the leader's), or
    /// `None` when this member leads.
    pub fn leader_client(&self) -> Result<Option<Channel>> {
        self.server.leader_client()
    }

    /// Adds a member (on the leader); returns it.
    pub async fn add_member(&self, peer_urls: Vec<String>, is_learner: bool) -> Result<PbMember> {
        membership::add(&self.server, peer_urls, is_learner).await
    }

    /// Removes member `id` (on the leader).
    pub async fn remove_member(&self, id: u64) -> Result<()> {
        membership::remove(&self.server, id).await
    }

    /// Changes member `id`'s peer URLs (on the leader).
    pub async fn update_member(&self, id: u64, peer_urls: Vec<String>) -> Result<()> {
        membership::update(&self.server, id, peer_urls).await
    }

    /// Promotes learner `id` to a voter (on the leader).
    pub async fn promote_member(&self, id: u64) -> Result<()> {
        membership::promote(&self.server, id).await
    }

    // ---- the v2 store (`--enable-v2`) ----

    /// A v2 node as this member has applied it, with the store's index.
    pub fn v2_get(
        &self,
        path: &str,
        recursive: bool,
    ) -> std::result::Result<(crate::v2::event::Event, u64), crate::v2::error::V2Error> {
        self.server.applier().v2().get(path, recursive)
    }

    /// A v2 watch (etcd's `?wait=true`), with the store's index when it was set.
    pub fn v2_watch(
        &self,
        path: &str,
        recursive: bool,
        stream: bool,
        since: u64,
    ) -> std::result::Result<(V2Watch, u64), crate::v2::error::V2Error> {
        self.server.applier().v2().watch(path, recursive, stream, since)
    }

    /// Raft traffic counts (`/v2/stats/leader`, `/v2/stats/self`).
    pub fn peer_stats(&self) -> &PeerStats {
        self.server.peer_stats()
    }

    /// The v2 store's operation counters (`/v2/stats/store`).
    pub fn v2_stats(&self) -> V2Stats {
        self.server.applier().v2().stats()
    }

    /// When the earliest v2 TTL runs out (ns since the epoch), if any node has one.
    pub fn v2_next_expiry(&self) -> Option<i64> {
        self.server.applier().v2().next_expiry()
    }

    /// Whether this member currently leads.
    pub fn is_leader(&self) -> bool {
        self.raft_status().leader == self.member_id()
    }

    /// The ids of the members raft replicates to (voters and learners).
    pub fn raft_node_ids(&self) -> Vec<u64> {
        self.server.raft_node_ids()
    }
}

/// An apply result of the wrong kind: a bug, reported rather than panicking.
pub fn unexpected(out: Out) -> Error {
    Error::Internal(format!("unexpected apply result {out:?}"))
}

/// Whether a range reads so few values that it may run inline (see `INLINE_RANGE_KEYS`).
fn is_small_read(req: &RangeRequest) -> bool {
    let single_key = req.range_end.is_empty();
    let sorted = req.sort_order != SortOrder::None as i32
        && !(req.sort_target == SortTarget::Key as i32
            && req.sort_order == SortOrder::Ascend as i32);
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    single_key
        || req.count_only
        || (!sorted && !filtered && req.limit > 0 && req.limit <= INLINE_RANGE_KEYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_reads_run_inline() {
        let range = |end: &str, limit: i64| RangeRequest {
            key: b"a".to_vec(),
            range_end: end.into(),
            limit,
            ..Default::default()
        };
        assert!(is_small_read(&range("", 0)));
        assert!(is_small_read(&range("z", 16)));
        assert!(!is_small_read(&range("z", 0)));
        assert!(!is_small_read(&range("z", 17)));
        let sorted = RangeRequest { sort_order: SortOrder::Descend as i32, ..range("z", 1) };
        assert!(!is_small_read(&sorted));
        let counted = RangeRequest { count_only: true, ..range("z", 0) };
        assert!(is_small_read(&counted));
    }
}
