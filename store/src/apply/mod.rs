//! Apply: turns committed raft entries into state, deterministically.
//!
//! The only place with side effects on the applied state. No clock, no randomness, no I/O but
//! RocksDB: every member applying the same entries reaches the same state. One batch of
//! entries becomes one `WriteBatch` holding the data, the applied log id and the membership,
//! so after a crash the member resumes exactly after the last batch that reached the WAL.

use std::sync::{Arc, Mutex};

use openraft::EntryPayload;

use crate::auth::{self, AuthInfo, AuthStore};
use crate::cluster::ClusterState;
use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::mvcc::{KeyRange, MvccStore, MvccWriter, TxnWrite};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::response_op::Response as OpResponse;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse, Compare,
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeResponse, PutRequest, PutResponse, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};
use crate::pb::mvccpb::KeyValue;
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::pb::oxcdpb::{Empty, InternalBatchResponse, InternalRequest, InternalResponse};
use crate::raft::types::{encode, Entry, LogId, Response, StorageError, StoredMembership};
use crate::storage::schema::meta_keys;
use crate::storage::{Cf, Storage};
use crate::v2::{V2Command, V2Outcome, V2Store};
use crate::watch::WatchHub;

/// The applied state and what applying changes.
pub struct Applier {
    storage: Storage,
    mvcc: Arc<MvccStore>,
    lessor: Arc<Lessor>,
    cluster: Arc<ClusterState>,
    hub: Arc<WatchHub>,
    auth: Arc<AuthStore>,
    /// The v2 keys API's store, apart from the v3 keys.
    v2: Arc<V2Store>,
    applied: Mutex<(Option<LogId>, StoredMembership)>,
    applied_index: tokio::sync::watch::Sender<u64>,
    /// The current command's lease attachment changes (see `apply_one`).
    pending_moves: Mutex<Vec<LeaseMove>>,
}

/// A key moving from one lease to another (either may be 0 for none).
type LeaseMove = (Vec<u8>, i64, i64);

impl Applier {
    /// Wires the applier over the stores, loading the last applied log id and membership.
    pub fn open(
        storage: Storage,
        mvcc: Arc<MvccStore>,
        lessor: Arc<Lessor>,
        cluster: Arc<ClusterState>,
        hub: Arc<WatchHub>,
        auth: Arc<AuthStore>,
    ) -> Result<Applier> {
        let applied = load_applied(&storage)?;
        let index = applied.0.map(|l| l.index).unwrap_or(0);
        let applied_index = tokio::sync::watch::channel(index).0;
        auth.follow_applied(applied_index.subscribe());
        let v2 = Arc::new(V2Store::open(storage.clone())?);
        Ok(Applier {
            v2,
            storage,
            mvcc,
            lessor,
            cluster,
            hub,
            auth,
            applied: Mutex::new(applied),
            applied_index,
            pending_moves: Mutex::new(Vec::new()),
        })
    }

    /// The auth store (reloaded with the rest after a snapshot install).
    pub fn auth(&self) -> &Arc<AuthStore> {
        &self.auth
    }

    /// The v2 store (reloaded with the rest after a snapshot install).
    pub fn v2(&self) -> &Arc<V2Store> {
        &self.v2
    }

    /// The last applied log id and membership, as raft asks on start-up.
    pub fn applied_state(&self) -> (Option<LogId>, StoredMembership) {
        self.applied.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Follows the applied index (linearizable reads wait on it).
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_index.subscribe()
    }

    /// Re-reads the applied log id and membership after a snapshot install (the MVCC store
    /// must be reloaded first), and tells the watch hub the state was replaced: its watchers
    /// replay the revisions the snapshot brought from history, or are canceled with the
    /// compact revision when that history is gone, as etcd's watchable store `Restore` does.
    pub fn reload(&self) -> Result<()> {
        let applied = load_applied(&self.storage)?;
        let index = applied.0.map(|l| l.index).unwrap_or(0);
        *self.applied.lock().unwrap_or_else(|e| e.into_inner()) = applied;
        self.v2.reload()?;
        self.hub.restored();
        self.applied_index.send_replace(index);
        Ok(())
    }

    /// Applies a batch of committed entries; one response per entry, in order.
    #[allow(clippy::result_large_err)] // openraft's error type, returned as raft expects it
    pub fn apply(&self, entries: Vec<Entry>) -> Result<Vec<Response>, StorageError> {
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let mut responses = Vec::with_capacity(entries.len());
        let mut writer = self.mvcc.writer();
        let start = writer.savepoint();
        let mut membership = None;
        for entry in entries {
            let out = match entry.payload {
                EntryPayload::Blank => Out::Empty(Empty {}),
                EntryPayload::Normal(req) => {
                    match self.apply_one(&mut writer, req.0, entry.log_id.index) {
                        Ok(out) => out,
                        Err(e) => {
                            // Raft stops on this error; readers keep the last applied state.
                            let _ = writer.rollback(start);
                            return Err(storage_err(&e));
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    self.v2_first_members(&mut writer, membership.is_some(), &m)
                        .map_err(|e| storage_err(&e))?;
                    membership = Some(StoredMembership::new(Some(entry.log_id), m));
                    Out::Empty(Empty {})
                }
            };
            responses.push(Response(InternalResponse { response: Some(out), applied_index: 0 }));
        }
        let meta = self.storage.cf(Cf::Meta);
        let applied_bytes = encode(&Some(last)).map_err(|e| storage_err(&e))?;
        writer.batch().put_cf(meta, meta_keys::APPLIED, applied_bytes);
        if let Some(m) = &membership {
            let bytes = encode(m).map_err(|e| storage_err(&e))?;
            writer.batch().put_cf(meta, meta_keys::MEMBERSHIP, bytes);
        }
        let events = writer.commit().map_err(|e| storage_err(&e))?;
        {
            let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            applied.0 = Some(last);
            if let Some(m) = membership {
                applied.1 = m;
            }
        }
        if !events.is_empty() {
            self.hub.publish(&events);
        }
        self.applied_index.send_replace(last.index);
        Ok(responses)
    }

    /// Applies one command as its own raft entry would be: the command's own error (a
    /// compacted revision, a missing lease, ...) is its response, as etcd answers it; only an
    /// internal (storage) error stops the apply.
    ///
    /// A command applies completely or not at all (etcd's txn semantics): on its error every
    /// write, event and revision it made is rolled back and its lease attachments are never
    /// made, so the next command reuses nothing and the watchers see nothing.
    fn apply_one(&self, w: &mut MvccWriter<'_>, req: InternalRequest, index: u64) -> Result<Out> {
        let savepoint = w.savepoint();
        let outer_moves = std::mem::take(&mut *self.lease_moves());
        let op = req.request.as_ref().and_then(op_name);
        let started = std::time::Instant::now();
        let result = self.apply_command(w, req, index);
        if let Some(op) = op {
            let success = result.is_ok();
            crate::metrics::observe_apply("v3", op, success, started.elapsed());
        }
        let moves = std::mem::replace(&mut *self.lease_moves(), outer_moves);
        match result {
            Err(e @ Error::Internal(_)) => Err(e),
            Err(e) => {
                w.rollback(savepoint)?;
                Ok(Out::Error((&e).into()))
            }
            Ok(out) => {
                for (key, old, new) in moves {
                    self.lessor.reattach(&key, old, new);
                }
                Ok(out)
            }
        }
    }

    /// A v2 command; the online migration also writes v3 keys and grants leases.
    fn apply_v2(&self, w: &mut MvccWriter<'_>, cmd: V2Command) -> Result<V2Outcome> {
        let V2Command::MigrateToV3 { time, options } = cmd else {
            return self.v2.apply(w.batch(), cmd);
        };
        let keys = self.v2.keys();
        Ok(match crate::v2::convert::convert(w, &self.lessor, &keys, time, options)? {
            Ok((done, moves)) => {
                for (key, old, new) in moves {
                    self.reattach(&key, old, new);
                }
                V2Outcome::Migrated(done)
            }
            Err(refused) => V2Outcome::Refused(refused),
        })
    }

    /// The cluster's first membership (bootstrap) records its members in the v2 store, as
    /// etcd's first conf changes do, so v2 indexes start where etcd's do.
    fn v2_first_members(
        &self,
        w: &mut MvccWriter<'_>,
        seen_in_batch: bool,
        m: &openraft::Membership<u64, openraft::BasicNode>,
    ) -> Result<()> {
        let had_members = seen_in_batch
            || self
                .applied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .membership()
                .nodes()
                .next()
                .is_some();
        if had_members {
            return Ok(());
        }
        for (id, node) in m.nodes() {
            self.v2.member_added(w.batch(), *id, std::slice::from_ref(&node.addr))?;
        }
        Ok(())
    }

    /// Lease attachments changed by the command being applied, made only once it succeeds.
    fn lease_moves(&self) -> std::sync::MutexGuard<'_, Vec<LeaseMove>> {
        self.pending_moves.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `key` moves from lease `old` to lease `new` if the command succeeds.
    fn reattach(&self, key: &[u8], old: i64, new: i64) {
        if old != new {
            self.lease_moves().push((key.to_vec(), old, new));
        }
    }

    fn apply_command(
        &self,
        w: &mut MvccWriter<'_>,
        req: InternalRequest,
        index: u64,
    ) -> Result<Out> {
        let Some(cmd) = req.request else {
            return Ok(Out::Empty(Empty {}));
        };
        if let Some(caller) = &req.auth {
            self.check_access(&AuthInfo::from(caller), &cmd)?;
        }
        Ok(match cmd {
            Cmd::Put(put) => {
                self.check_space()?;
                let mut txn = w.txn();
                let mut resp = self.put(&mut txn, put)?;
                resp.header = Some(revision_header(txn.finish()));
                Out::Put(resp)
            }
            Cmd::DeleteRange(del) => {
                let mut txn = w.txn();
                let mut resp = self.delete_range(&mut txn, &del)?;
                resp.header = Some(revision_header(txn.finish()));
                Out::DeleteRange(resp)
            }
            Cmd::Txn(txn_req) => {
                if has_put(&txn_req) {
                    self.check_space()?;
                }
                let mut txn = w.txn();
                let path = decide_path(&txn, &txn_req)?;
                self.check_txn(&txn, &txn_req, &mut path.iter().copied())?;
                let mut resp = self.txn(&mut txn, &txn_req, &mut path.iter().copied())?;
                resp.header = Some(revision_header(txn.finish()));
                Out::Txn(resp)
            }
            Cmd::Compaction(CompactionRequest { revision, .. }) => {
                w.compact(revision)?;
                Out::Compaction(CompactionResponse {
                    header: Some(revision_header(w.current_revision())),
                })
            }
            Cmd::LeaseGrant(LeaseGrantRequest { ttl, id }) => {
                self.check_space()?;
                let ttl = self.lessor.grant(w.batch(), id, ttl)?;
                Out::LeaseGrant(LeaseGrantResponse {
                    header: Some(revision_header(w.current_revision())),
                    id,
                    ttl,
                    error: String::new(),
                })
            }
            Cmd::LeaseRevoke(revoke) => Out::LeaseRevoke(self.revoke(w, revoke.id)?),
            Cmd::LeaseExpire(expire) => match self.revoke(w, expire.id) {
                Err(Error::LeaseNotFound) => Out::Empty(Empty {}),
                other => Out::LeaseRevoke(other?),
            },
            Cmd::Alarm(AlarmRequest { action, member_id, alarm }) => {
                let action = AlarmAction::try_from(action).unwrap_or(AlarmAction::Get);
                let alarm = AlarmType::try_from(alarm).unwrap_or(AlarmType::None);
                let alarms = self.cluster.apply_alarm(w.batch(), action, member_id, alarm)?;
                Out::Alarm(AlarmResponse {
                    header: Some(revision_header(w.current_revision())),
                    alarms,
                })
            }
            Cmd::MemberAttributes(attrs) => {
                self.v2.member_published(w.batch(), attrs.id, &attrs.name, &attrs.client_urls)?;
                self.cluster.publish_member(w.batch(), attrs);
                Out::Empty(Empty {})
            }
            Cmd::MemberAdded(added) => {
                self.v2.member_added(w.batch(), added.id, &added.peer_urls)?;
                self.cluster.add_member(w.batch(), added.id, added.peer_urls, added.pending_voter);
                Out::Empty(Empty {})
            }
            Cmd::MemberPromoted(promoted) => {
                let urls =
                    self.cluster.member(promoted.id).map(|m| m.peer_urls).unwrap_or_default();
                self.v2.member_added(w.batch(), promoted.id, &urls)?;
                self.cluster.promoted(w.batch(), promoted.id);
                Out::Empty(Empty {})
            }
            Cmd::MemberRemoved(removed) => {
                self.cluster.remove_member(w.batch(), removed.id)?;
                self.v2.member_removed(w.batch(), removed.id)?;
                Out::Empty(Empty {})
            }
            Cmd::V2(cmd) => {
                let cmd = V2Command::decode(&cmd).map_err(|e| Error::internal("decode v2", e))?;
                let method = cmd.method();
                let started = std::time::Instant::now();
                let outcome = self.apply_v2(w, cmd)?;
                let success = !matches!(outcome, V2Outcome::Error(_) | V2Outcome::Refused(_));
                crate::metrics::observe_apply("v2", method, success, started.elapsed());
                Out::V2(outcome.encode())
            }
            Cmd::Batch(batch) => {
                let mut responses = Vec::with_capacity(batch.requests.len());
                for sub in batch.requests {
                    // Each command exactly as if it were its own entry.
                    let out = self.apply_one(w, sub, index)?;
                    responses.push(InternalResponse { response: Some(out), applied_index: 0 });
                }
                Out::Batch(InternalBatchResponse { responses })
            }
            cmd @ (Cmd::AuthEnable(_)
            | Cmd::AuthDisable(_)
            | Cmd::Authenticate(_)
            | Cmd::AuthUserAdd(_)
            | Cmd::AuthUserDelete(_)
            | Cmd::AuthUserChangePassword(_)
            | Cmd::AuthUserGrantRole(_)
            | Cmd::AuthUserRevokeRole(_)
            | Cmd::AuthRoleAdd(_)
            | Cmd::AuthRoleDelete(_)
            | Cmd::AuthRoleGrantPermission(_)
            | Cmd::AuthRoleRevokePermission(_)) => {
                let revision = w.current_revision();
                self.auth.apply(w.batch(), cmd, index, revision)?
            }
        })
    }

    /// etcd's `authApplierV3`: a client's request is checked against the auth store as this
    /// entry finds it, so a permission revoked before the entry applies is already gone.
    /// (Range and read-only txns are checked by the API layer; so are the requests below
    /// that etcd checks there: compaction, alarms, membership.)
    fn check_access(&self, caller: &AuthInfo, cmd: &Cmd) -> Result<()> {
        let auth = &self.auth;
        match cmd {
            Cmd::Put(p) => {
                auth.check_write(caller, &p.key, &[])?;
                self.check_lease_keys(caller, p.lease)?;
                if p.prev_kv {
                    auth.check_range(caller, &p.key, &[])?;
                }
                Ok(())
            }
            Cmd::DeleteRange(d) => {
                auth.check_write(caller, &d.key, &d.range_end)?;
                if d.prev_kv {
                    auth.check_range(caller, &d.key, &d.range_end)?;
                }
                Ok(())
            }
            Cmd::Txn(t) => auth.check_txn(caller, t),
            Cmd::LeaseRevoke(r) => self.check_lease_keys(caller, r.id),
            cmd if auth::needs_admin(cmd) => auth.check_admin(caller),
            _ => Ok(()),
        }
    }

    /// A lease's keys must all be writable by whoever revokes it or attaches keys to it.
    fn check_lease_keys(&self, caller: &AuthInfo, lease: i64) -> Result<()> {
        if lease == 0 || !self.auth.is_enabled() {
            return Ok(());
        }
        for key in self.lessor.status(lease).map(|s| s.keys).unwrap_or_default() {
            self.auth.check_write(caller, &key, &[])?;
        }
        Ok(())
    }

    fn check_space(&self) -> Result<()> {
        if self.cluster.no_space() {
            return Err(Error::NoSpace);
        }
        Ok(())
    }

    /// Takes the request by value so a plain put moves its value into the store, uncopied.
    fn put(&self, txn: &mut TxnWrite<'_, '_>, req: PutRequest) -> Result<PutResponse> {
        if req.lease != 0 && !self.lessor.exists(req.lease) {
            return Err(Error::LeaseNotFound);
        }
        // The previous value is read only when the answer or the new value needs it; the
        // index alone says whether the key exists.
        let needs_prev = req.prev_kv || req.ignore_value || req.ignore_lease;
        let prev = if needs_prev { txn.value_of(&req.key)? } else { None };
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(Error::KeyNotFound);
        }
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value,
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let size = req.key.len() + value.len();
        let replaced = txn.put(&req.key, value, lease);
        crate::metrics::MVCC_PUT.inc();
        crate::metrics::TOTAL_PUT_SIZE.add(i64::try_from(size).unwrap_or(i64::MAX));
        self.reattach(&req.key, replaced.map(|c| c.lease).unwrap_or(0), lease);
        Ok(PutResponse {
            header: Some(revision_header(txn.revision())),
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    fn delete_range(
        &self,
        txn: &mut TxnWrite<'_, '_>,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        let range = KeyRange::new(&req.key, &req.range_end);
        let deleted = txn.delete_range(&range);
        crate::metrics::MVCC_DELETE.inc();
        let mut prev_kvs = Vec::new();
        for (key, change) in &deleted {
            self.reattach(key, change.lease, 0);
            if req.prev_kv {
                if let Some(kv) = txn.read(change.rev)? {
                    prev_kvs.push(kv);
                }
            }
        }
        Ok(DeleteRangeResponse {
            header: Some(revision_header(txn.revision())),
            deleted: deleted.len() as i64,
            prev_kvs,
        })
    }

    fn txn(
        &self,
        txn: &mut TxnWrite<'_, '_>,
        req: &TxnRequest,
        path: &mut impl Iterator<Item = bool>,
    ) -> Result<TxnResponse> {
        let succeeded = path.next().unwrap_or(false);
        let ops = if succeeded { &req.success } else { &req.failure };
        if ops.len() > 1 {
            crate::metrics::MVCC_TXN.inc();
        }
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Op::RequestRange(r)) => {
                    crate::metrics::MVCC_RANGE.inc();
                    crate::metrics::DEBUGGING_RANGE.inc();
                    OpResponse::ResponseRange(txn.range(r)?)
                }
                Some(Op::RequestPut(p)) => OpResponse::ResponsePut(self.put(txn, p.clone())?),
                Some(Op::RequestDeleteRange(d)) => {
                    OpResponse::ResponseDeleteRange(self.delete_range(txn, d)?)
                }
                Some(Op::RequestTxn(t)) => OpResponse::ResponseTxn(self.txn(txn, t, path)?),
                None => continue,
            };
            responses.push(ResponseOp { response: Some(response) });
        }
        Ok(TxnResponse { header: Some(revision_header(txn.revision())), succeeded, responses })
    }

    /// etcd's `checkTxn`, before any op runs: every range on the chosen path must read a
    /// revision that exists, every put must name an existing lease and, with
    /// `ignore_value`/`ignore_lease`, an existing key.
    fn check_txn(
        &self,
        txn: &TxnWrite<'_, '_>,
        req: &TxnRequest,
        path: &mut impl Iterator<Item = bool>,
    ) -> Result<()> {
        let ops = if path.next().unwrap_or(false) { &req.success } else { &req.failure };
        for op in ops {
            match &op.request {
                // etcd's checkRequestRange, against the store as the txn found it: a range
                // after a put in the same txn cannot read the txn's own revision either.
                Some(Op::RequestRange(r)) if r.revision > 0 => {
                    if r.revision > txn.revision() {
                        return Err(Error::FutureRev);
                    }
                    if r.revision < txn.compacted_revision() {
                        return Err(Error::Compacted);
                    }
                }
                Some(Op::RequestPut(p)) => {
                    if p.lease != 0 && !self.lessor.exists(p.lease) {
                        return Err(Error::LeaseNotFound);
                    }
                    if (p.ignore_value || p.ignore_lease) && txn.get(&p.key).is_none() {
                        return Err(Error::KeyNotFound);
                    }
                }
                Some(Op::RequestTxn(t)) => self.check_txn(txn, t, path)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn revoke(&self, w: &mut MvccWriter<'_>, id: i64) -> Result<LeaseRevokeResponse> {
        let keys = self.lessor.revoke(w.batch(), id)?;
        let mut txn = w.txn();
        for key in keys {
            txn.delete_range(&KeyRange::Single(key));
        }
        Ok(LeaseRevokeResponse { header: Some(revision_header(txn.finish())) })
    }
}

/// etcd's name for a command in `etcd_server_apply_duration_seconds` (its request's field
/// name); `None` for what etcd applies as a raft conf change or is a batch of commands, and
/// for v2 commands, which are timed as `v2` once decoded.
fn op_name(cmd: &Cmd) -> Option<&'static str> {
    Some(match cmd {
        Cmd::Put(_) => "Put",
        Cmd::DeleteRange(_) => "DeleteRange",
        Cmd::Txn(_) => "Txn",
        Cmd::Compaction(_) => "Compaction",
        Cmd::LeaseGrant(_) => "LeaseGrant",
        Cmd::LeaseRevoke(_) | Cmd::LeaseExpire(_) => "LeaseRevoke",
        Cmd::Alarm(_) => "Alarm",
        Cmd::MemberAttributes(_) => "ClusterMemberAttrSet",
        Cmd::AuthEnable(_) => "AuthEnable",
        Cmd::AuthDisable(_) => "AuthDisable",
        Cmd::Authenticate(_) => "Authenticate",
        Cmd::AuthUserAdd(_) => "AuthUserAdd",
        Cmd::AuthUserDelete(_) => "AuthUserDelete",
        Cmd::AuthUserChangePassword(_) => "AuthUserChangePassword",
        Cmd::AuthUserGrantRole(_) => "AuthUserGrantRole",
        Cmd::AuthUserRevokeRole(_) => "AuthUserRevokeRole",
        Cmd::AuthRoleAdd(_) => "AuthRoleAdd",
        Cmd::AuthRoleDelete(_) => "AuthRoleDelete",
        Cmd::AuthRoleGrantPermission(_) => "AuthRoleGrantPermission",
        Cmd::AuthRoleRevokePermission(_) => "AuthRoleRevokePermission",
        Cmd::MemberAdded(_)
        | Cmd::MemberPromoted(_)
        | Cmd::MemberRemoved(_)
        | Cmd::V2(_)
        | Cmd::Batch(_) => return None,
    })
}

/// Evaluates every compare the txn will meet, before any op runs, in execution order (etcd's
/// `compareToPath`): nested txns see the state as it was when the outer txn began.
fn decide_path(txn: &TxnWrite<'_, '_>, req: &TxnRequest) -> Result<Vec<bool>> {
    let mut path = Vec::new();
    walk_path(txn, req, &mut path)?;
    Ok(path)
}

fn walk_path(txn: &TxnWrite<'_, '_>, req: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
    let mut ok = true;
    for c in &req.compare {
        if !compare(txn, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    let ops = if ok { &req.success } else { &req.failure };
    for op in ops {
        if let Some(Op::RequestTxn(t)) = &op.request {
            walk_path(txn, t, path)?;
        }
    }
    Ok(())
}

/// etcd's `applyCompare`: true if every key in the compare's range satisfies it; a value
/// compare on no key is false, other targets compare against a zero key-value.
fn compare(txn: &TxnWrite<'_, '_>, c: &Compare) -> Result<bool> {
    let range = KeyRange::new(&c.key, &c.range_end);
    let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
    let keys = txn.keys_in(&range);
    if keys.is_empty() {
        if target == CompareTarget::Value {
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &KeyValue::default()));
    }
    for (_, change) in keys {
        let kv = match target {
            CompareTarget::Value => txn.read(change.rev)?.unwrap_or_default(),
            _ => KeyValue {
                create_revision: change.create,
                mod_revision: change.rev.main,
                version: change.version,
                lease: change.lease,
                ..Default::default()
            },
        };
        if !compare_kv(c, target, &kv) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ord = match (target, &c.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => {
            kv.value.as_slice().cmp(v.as_slice())
        }
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[][..]),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(r))) => kv.create_revision.cmp(r),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(r))) => kv.mod_revision.cmp(r),
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(l))) => kv.lease.cmp(l),
        (CompareTarget::Create, _) => kv.create_revision.cmp(&0),
        (CompareTarget::Mod, _) => kv.mod_revision.cmp(&0),
        (CompareTarget::Version, _) => kv.version.cmp(&0),
        (CompareTarget::Lease, _) => kv.lease.cmp(&0),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

/// Whether a txn may add data (any put on any branch): such txns count against the quota.
pub fn has_put(req: &TxnRequest) -> bool {
    req.success.iter().chain(&req.failure).any(|op| match &op.request {
        Some(Op::RequestPut(_)) => true,
        Some(Op::RequestTxn(t)) => has_put(t),
        _ => false,
    })
}

fn revision_header(revision: i64) -> ResponseHeader {
    ResponseHeader { revision, ..Default::default() }
}

fn load_applied(storage: &Storage) -> Result<(Option<LogId>, StoredMembership)> {
    let db = storage.db();
    let meta = storage.cf(Cf::Meta);
    let applied: Option<LogId> = match db.get_cf(meta, meta_keys::APPLIED)? {
        Some(b) => {
            crate::raft::types::decode(&b).map_err(|e| Error::internal("decode applied", e))?
        }
        None => None,
    };
    let membership = match db.get_cf(meta, meta_keys::MEMBERSHIP)? {
        Some(b) => {
            crate::raft::types::decode(&b).map_err(|e| Error::internal("decode membership", e))?
        }
        None => StoredMembership::default(),
    };
    Ok((applied, membership))
}

fn storage_err(e: &dyn std::fmt::Display) -> StorageError {
    openraft::StorageIOError::new(
        openraft::ErrorSubject::StateMachine,
        openraft::ErrorVerb::Write,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

/// Decodes an applied command's response into the client-facing result.
pub fn into_result(resp: Response) -> Result<Out> {
    match resp.0.response {
        Some(Out::Error(err)) => Err(err.into()),
        Some(out) => Ok(out),
        None => Err(Error::Internal("empty apply response".into())),
    }
}

impl Applier {
    /// Serves a txn that only reads, without raft (etcd does the same): evaluated under the
    /// store's write lock so it sees one consistent revision, then discarded.
    pub fn read_only_txn(&self, req: &TxnRequest) -> Result<TxnResponse> {
        let mut writer = self.mvcc.writer();
        let mut txn = writer.txn();
        let path = decide_path(&txn, req)?;
        let mut resp = self.txn(&mut txn, req, &mut path.iter().copied())?;
        resp.header = Some(revision_header(txn.finish()));
        Ok(resp)
    }
}

/// Whether a txn changes nothing on any branch (so it can skip raft).
pub fn is_read_only(req: &TxnRequest) -> bool {
    req.success.iter().chain(&req.failure).all(|op| match &op.request {
        Some(Op::RequestRange(_)) | None => true,
        Some(Op::RequestTxn(t)) => is_read_only(t),
        _ => false,
    })
}

/// Whether every range in a read-only txn is serializable (then no ReadIndex is needed).
pub fn is_serializable(req: &TxnRequest) -> bool {
    req.success.iter().chain(&req.failure).all(|op| match &op.request {
        Some(Op::RequestRange(r)) => r.serializable,
        Some(Op::RequestTxn(t)) => is_serializable(t),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    //! Apply against a real RocksDB in a temporary directory.
    use super::*;
    use crate::pb::etcdserverpb::{RangeRequest, RequestOp};
    use crate::pb::oxcdpb::InternalBatch;
    use openraft::{CommittedLeaderId, EntryPayload};

    struct Member {
        _dir: tempfile::TempDir,
        applier: Applier,
        mvcc: Arc<MvccStore>,
        lessor: Arc<Lessor>,
        index: u64,
    }

    fn member() -> Member {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("storage");
        let mvcc = Arc::new(MvccStore::open(storage.clone()).expect("mvcc"));
        let lessor = Arc::new(Lessor::open(storage.clone(), 1, Vec::new()).expect("lessor"));
        let cluster = Arc::new(ClusterState::open(storage.clone()).expect("cluster"));
        let hub = WatchHub::new(mvcc.clone());
        let auth = Arc::new(AuthStore::open(storage.clone()).expect("auth"));
        let applier = Applier::open(storage, mvcc.clone(), lessor.clone(), cluster, hub, auth)
            .expect("applier");
        Member { _dir: dir, applier, mvcc, lessor, index: 0 }
    }

    impl Member {
        fn apply(&mut self, cmd: Cmd) -> Out {
            self.index += 1;
            let entry = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
                payload: EntryPayload::Normal(crate::raft::types::Request(InternalRequest {
                    request: Some(cmd),
                    auth: None,
                })),
            };
            let mut out = self.applier.apply(vec![entry]).expect("apply");
            out.pop().and_then(|r| r.0.response).expect("a response")
        }

        fn get(&self, key: &[u8]) -> Vec<KeyValue> {
            let req = RangeRequest { key: key.to_vec(), ..Default::default() };
            self.mvcc.range(&req).expect("range").kvs
        }
    }

    fn put(key: &str, value: &str, lease: i64) -> PutRequest {
        PutRequest { key: key.into(), value: value.into(), lease, ..Default::default() }
    }

    fn op_put(key: &str, value: &str, lease: i64) -> RequestOp {
        RequestOp { request: Some(Op::RequestPut(put(key, value, lease))) }
    }

    fn op_range_at(key: &str, revision: i64) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: key.into(),
                revision,
                ..Default::default()
            })),
        }
    }

    fn revision_of(out: &Out) -> i64 {
        match out {
            Out::Put(p) => p.header.as_ref().map(|h| h.revision).unwrap_or_default(),
            other => panic!("not a put response: {other:?}"),
        }
    }

    #[test]
    fn a_failed_txn_writes_nothing_and_consumes_no_revision() {
        let mut m = member();
        assert_eq!(revision_of(&m.apply(Cmd::Put(put("a", "0", 0)))), 2);
        let txn = TxnRequest {
            success: vec![op_put("a", "1", 0), op_range_at("b", 1000)],
            ..Default::default()
        };
        let out = m.apply(Cmd::Txn(txn));
        assert_eq!(out, Out::Error((&Error::FutureRev).into()));
        assert_eq!(m.mvcc.current_revision(), 2, "no revision consumed");
        assert_eq!(revision_of(&m.apply(Cmd::Put(put("c", "2", 0)))), 3);
        let a = m.get(b"a");
        assert_eq!((a[0].value.as_slice(), a[0].mod_revision), (&b"0"[..], 2));
        let c = m.get(b"c");
        assert_eq!((c[0].key.as_slice(), c[0].mod_revision), (&b"c"[..], 3));
    }

    #[test]
    fn a_failed_command_in_a_batch_is_rolled_back_alone() {
        let mut m = member();
        let lease = 7;
        m.apply(Cmd::LeaseGrant(LeaseGrantRequest { ttl: 60, id: lease }));
        let failing = TxnRequest {
            // The put to a live lease would attach "x"; the missing lease fails the txn.
            success: vec![op_put("x", "1", lease), op_put("y", "1", 999)],
            ..Default::default()
        };
        let batch = InternalBatch {
            requests: [Cmd::Put(put("p", "1", 0)), Cmd::Txn(failing), Cmd::Put(put("q", "1", 0))]
                .into_iter()
                .map(|c| InternalRequest { request: Some(c), auth: None })
                .collect(),
        };
        let Out::Batch(out) = m.apply(Cmd::Batch(batch)) else { panic!("batch response") };
        let outs: Vec<Out> = out.responses.into_iter().filter_map(|r| r.response).collect();
        assert_eq!(revision_of(&outs[0]), 2);
        assert_eq!(outs[1], Out::Error((&Error::LeaseNotFound).into()));
        assert_eq!(revision_of(&outs[2]), 3);
        assert!(m.get(b"x").is_empty() && m.get(b"y").is_empty());
        let status = m.lessor.status(lease).expect("lease");
        assert!(status.keys.is_empty(), "no key attached by the failed txn: {:?}", status.keys);
    }

    #[test]
    fn a_range_below_the_compacted_revision_fails_the_txn_before_it_writes() {
        let mut m = member();
        for v in ["1", "2", "3"] {
            m.apply(Cmd::Put(put("k", v, 0)));
        }
        m.apply(Cmd::Compaction(CompactionRequest { revision: 3, physical: false }));
        let txn = TxnRequest {
            success: vec![op_put("k", "4", 0), op_range_at("k", 2)],
            ..Default::default()
        };
        assert_eq!(m.apply(Cmd::Txn(txn)), Out::Error((&Error::Compacted).into()));
        assert_eq!(m.mvcc.current_revision(), 4);
        assert_eq!(m.get(b"k")[0].value, b"3");
    }
}
