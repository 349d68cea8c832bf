//! One watch stream: its control half, its receiving half, and its syncer task.
//!
//! All responses of a stream go through one bounded queue (`STREAM_QUEUE_CAPACITY`), so their
//! order is the order in which they were queued. Three producers feed it:
//! - `publish` (synchronous, `try_send` only): live events of synced watchers;
//! - the control half (the gRPC receive loop): created / canceled / progress responses, each
//!   sent through a permit reserved *before* taking the hub's lock, so the response is queued
//!   atomically with the state change it reports (a watcher's events can never overtake its
//!   "created", and none follow its "canceled");
//! - the syncer (one task per stream): history replay for unsynced watchers, the periodic
//!   progress notifications and deferred progress answers.
//!
//! The receiving half fills `prev_kv` (RocksDB reads; large batches on a blocking thread) and
//! is what the gRPC layer drains. Dropping it closes the stream and drops all its watchers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::state::{Delivery, Phase, StreamShared, WatcherKey};
use super::{WatchHub, MAX_REVISIONS_PER_RESPONSE, RESYNC_RETRY};
use crate::error::{Error, Result};
use crate::mvcc::{KeyRange, MvccStore};
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::{Event, KeyValue};

/// The request side of a stream: what the gRPC receive loop calls for each client message.
///
/// Every method waits for room in the stream's queue (a slow client slows its own control
/// requests, like etcd's blocking `ctrlStream`) and is a no-op once the stream has closed.
pub struct WatchControl {
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) stream: u64,
    pub(crate) tx: mpsc::Sender<Delivery>,
    pub(crate) shared: Arc<StreamShared>,
}

impl WatchControl {
    /// Dispatches one client message; an empty request union is ignored, as etcd does.
    pub async fn handle(&self, req: WatchRequest) {
        match req.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => self.cancel(cancel.watch_id).await,
            Some(RequestUnion::ProgressRequest(_)) => self.request_progress().await,
            None => {}
        }
    }

    /// Creates a watcher and queues its "created" response (or created + canceled with
    /// etcd's reason: duplicate id, empty range, negative start revision).
    pub async fn create(&self, req: WatchCreateRequest) {
        let Ok(permit) = self.tx.reserve().await else { return };
        let needs_sync = {
            let mut st = self.hub.lock();
            let Some(created) = st.create(self.stream, &req) else { return };
            permit.send(created.delivery);
            created.needs_sync
        };
        if needs_sync {
            self.shared.wake.notify_one();
        }
    }

    /// Refuses a create request with `reason` (etcd's permission-denied text), answering
    /// created + canceled with the id the request asked for (0 when it asked for none), as
    /// etcd's `recvLoop` answers a watch the caller may not read.
    pub async fn reject(&self, watch_id: i64, reason: String) {
        let Ok(permit) = self.tx.reserve().await else { return };
        let st = self.hub.lock();
        let response = WatchResponse {
            watch_id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        };
        permit.send(Delivery::control(response, st.published));
    }

    /// Cancels a watcher; an unknown id gets no answer at all, as in etcd.
    pub async fn cancel(&self, watch_id: i64) {
        let Ok(permit) = self.tx.reserve().await else { return };
        let deferred = {
            let mut st = self.hub.lock();
            let Some(canceled) = st.cancel(self.stream, watch_id) else { return };
            permit.send(canceled);
            st.has_deferred_progress(self.stream)
        };
        if deferred {
            // The cancelled watcher may have been the one holding progress back.
            self.shared.wake.notify_one();
        }
    }

    /// Answers a progress request with `watch_id = -1` at the published revision, as etcd
    /// 3.5. Unlike etcd 3.5.1 (which answered at once, possibly ahead of events still queued
    /// for catching-up watchers), the answer waits until every watcher of the stream is
    /// current, so the revision never claims events the client has not been sent.
    pub async fn request_progress(&self) {
        let Ok(permit) = self.tx.reserve().await else { return };
        let mut st = self.hub.lock();
        st.request_progress(self.stream, permit);
    }

    /// Resolves once the stream's receiving half is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The response side of a stream, drained by the gRPC layer. Dropping it closes the stream.
pub struct WatchReceiver {
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) stream: u64,
    pub(crate) rx: mpsc::Receiver<Delivery>,
    pub(crate) closed: watch::Receiver<bool>,
    /// The stream's syncer task, owned here: it ends with the stream, and if it dies while
    /// the stream is open the stream ends with an error rather than stalling unsynced
    /// watchers in silence.
    pub(crate) syncer: tokio::task::JoinHandle<()>,
    pub(crate) done: bool,
}

impl WatchReceiver {
    /// The next response in stream order, with `prev_kv` filled in; `Err(Error::Stopped)`
    /// once if the hub shut down, then `None`.
    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        match self.recv().await? {
            Ok(d) => Some(Ok(self.complete(d).await)),
            Err(e) => Some(Err(e)),
        }
    }

    /// Like [`next`](Self::next) but without filling `prev_kv`; cancel-safe, so it can sit in
    /// a `select!`. Pass what it returns to [`complete`](Self::complete).
    pub async fn recv(&mut self) -> Option<Result<Delivery>> {
        if self.done {
            return None;
        }
        /// What woke the receiver.
        enum Woke {
            Delivery(Option<Delivery>),
            SyncerEnded(std::result::Result<(), tokio::task::JoinError>),
        }
        let syncer_running = !self.syncer.is_finished();
        let woke = tokio::select! {
            biased;
            _ = self.closed.wait_for(|closed| *closed) => Woke::Delivery(None),
            d = self.rx.recv() => Woke::Delivery(d),
            ended = &mut self.syncer, if syncer_running => Woke::SyncerEnded(ended),
        };
        let delivery = match woke {
            Woke::Delivery(d) => d,
            // The syncer returns on its own only once the stream is closing: wait for that.
            Woke::SyncerEnded(Ok(())) => return Box::pin(self.recv()).await,
            // Anything else (a panic) leaves watchers that would never catch up.
            Woke::SyncerEnded(Err(e)) => {
                self.done = true;
                tracing::error!(error = %e, "watch stream syncer died");
                return Some(Err(Error::internal("watch stream syncer", e)));
            }
        };
        match delivery {
            Some(d) => Some(Ok(d)),
            None => {
                self.done = true;
                Some(Err(Error::Stopped))
            }
        }
    }

    /// Fills the `prev_kv` of a delivery's events if its watcher asked for them.
    pub async fn complete(&self, d: Delivery) -> Delivery {
        fill_prev_kv(&self.hub.mvcc, d).await
    }
}

impl Drop for WatchReceiver {
    fn drop(&mut self) {
        self.syncer.abort();
        self.hub.close_stream(self.stream);
    }
}

/// Up to this many `prev_kv` reads are done on the stream's own task: the previous value of a
/// key just written is in RocksDB's memtable or block cache, and the hop to a blocking thread
/// (two thread wake-ups per response) costs more than such reads. Larger batches (history
/// replay) still go to a blocking thread.
const INLINE_PREV_KV_READS: usize = 8;

/// Fills each event's `prev_kv` with the key's value just before the event, as etcd's send
/// loop does: not for creations, and not where that revision is already compacted.
async fn fill_prev_kv(mvcc: &Arc<MvccStore>, mut d: Delivery) -> Delivery {
    if !d.prev_kv || d.response.events.is_empty() {
        return d;
    }
    let wanted: Vec<Option<(Vec<u8>, i64)>> = d
        .response
        .events
        .iter()
        .map(|ev| {
            let kv = ev.kv.as_ref()?;
            let creation =
                ev.r#type == EventType::Put as i32 && kv.create_revision == kv.mod_revision;
            (!creation).then(|| (kv.key.clone(), kv.mod_revision - 1))
        })
        .collect();
    let reads = wanted.iter().filter(|w| w.is_some()).count();
    // Creations have no previous value: a response of only those (every create of
    // kube-apiserver's watch cache) needs no read at all.
    if reads == 0 {
        return d;
    }
    let prevs = if reads <= INLINE_PREV_KV_READS {
        read_prev_kvs(mvcc, wanted)
    } else {
        let mvcc = mvcc.clone();
        match tokio::task::spawn_blocking(move || read_prev_kvs(&mvcc, wanted)).await {
            Ok(prevs) => prevs,
            Err(e) => {
                tracing::warn!(error = %e, "watch prev_kv lookup failed");
                return d;
            }
        }
    };
    for (ev, prev) in d.response.events.iter_mut().zip(prevs) {
        ev.prev_kv = prev;
    }
    d
}

/// The value of each `(key, revision)` asked for, `None` where nothing is asked, the key did
/// not exist then, or that revision is compacted.
fn read_prev_kvs(mvcc: &MvccStore, wanted: Vec<Option<(Vec<u8>, i64)>>) -> Vec<Option<KeyValue>> {
    let compacted = mvcc.compacted_revision();
    wanted
        .into_iter()
        .map(|w| match w {
            Some((key, at)) if at >= compacted => mvcc.kv_at(&key, at).ok().flatten(),
            _ => None,
        })
        .collect()
}

/// The stream's queue is gone: the client left or the hub shut down.
struct Closed;

/// How far a catch-up pass got.
enum Pass {
    /// No watcher of the stream is unsynced any more.
    Done,
    /// A history read failed; try again after `RESYNC_RETRY`.
    Retry,
}

/// The per-stream background task: catches up unsynced watchers from history, sends the
/// periodic progress notifications and answers deferred progress requests. Ends when the
/// stream closes.
pub(crate) async fn run_syncer(
    hub: Arc<WatchHub>,
    stream: u64,
    shared: Arc<StreamShared>,
    tx: mpsc::Sender<Delivery>,
    progress_every: Duration,
) {
    let mut closed = shared.closed.subscribe();
    let mut ticker = tokio::time::interval_at(Instant::now() + progress_every, progress_every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = ticker.tick() => hub.lock().progress_tick(stream),
            _ = closed.wait_for(|c| *c) => return,
            _ = tx.closed() => return,
        }
        loop {
            match sync_stream(&hub, stream, &tx).await {
                Ok(Pass::Done) => break,
                Ok(Pass::Retry) => {
                    tokio::select! {
                        _ = tokio::time::sleep(RESYNC_RETRY) => {}
                        _ = tx.closed() => return,
                    }
                }
                Err(Closed) => return,
            }
        }
        if flush_deferred_progress(&hub, stream, &tx).await.is_err() {
            return;
        }
    }
}

/// Catches up every unsynced watcher of the stream (including ones that fall behind while
/// this runs).
async fn sync_stream(
    hub: &Arc<WatchHub>,
    stream: u64,
    tx: &mpsc::Sender<Delivery>,
) -> Result<Pass, Closed> {
    loop {
        let behind: Vec<(i64, u64)> = {
            let st = hub.lock();
            let Some(slot) = st.streams.get(&stream) else { return Ok(Pass::Done) };
            slot.ids
                .iter()
                .filter_map(|id| st.watchers.get(&(stream, *id)).map(|w| (*id, w)))
                .filter(|(_, w)| w.phase == Phase::Unsynced)
                .map(|(id, w)| (id, w.gen))
                .collect()
        };
        if behind.is_empty() {
            return Ok(Pass::Done);
        }
        for (id, gen) in behind {
            if let Pass::Retry = sync_watcher(hub, (stream, id), gen, tx).await? {
                return Ok(Pass::Retry);
            }
        }
    }
}

/// What a catch-up round needs to know about its watcher, copied under the lock.
struct Snapshot {
    range: KeyRange,
    next: i64,
    target: i64,
}

/// Replays history for one unsynced watcher until it is synced, compacted or gone.
///
/// Each round reads `[next, target]` (target = the published revision at the start of the
/// round) without the lock, then under the lock queues the events and, if nothing was
/// published meanwhile (`published == target`), makes the watcher synced. Otherwise the next
/// round reads on from `target + 1`. So every revision is delivered exactly once: by history
/// up to `target`, by `publish` after it.
async fn sync_watcher(
    hub: &Arc<WatchHub>,
    wk: WatcherKey,
    gen: u64,
    tx: &mpsc::Sender<Delivery>,
) -> Result<Pass, Closed> {
    loop {
        let snap = {
            let st = hub.lock();
            match st.watchers.get(&wk) {
                Some(w) if w.gen == gen && w.phase == Phase::Unsynced => {
                    Snapshot { range: w.range.clone(), next: w.next_rev, target: st.published }
                }
                _ => return Ok(Pass::Done),
            }
        };
        if snap.next > snap.target {
            let mut st = hub.lock();
            if st.published == snap.target && still_unsynced(&st, wk, gen, snap.next) {
                st.mark_synced(wk);
                return Ok(Pass::Done);
            }
            continue;
        }
        if snap.next < hub.mvcc.compacted_revision() {
            return cancel_compacted(hub, wk, gen, tx).await;
        }
        let mvcc = hub.mvcc.clone();
        let range = snap.range.clone();
        let (next, target) = (snap.next, snap.target);
        let read =
            tokio::task::spawn_blocking(move || read_batch(&mvcc, &range, next, target)).await;
        let (events, more) = match read {
            Ok(Ok(batch)) => batch,
            Ok(Err(Error::Compacted)) => return cancel_compacted(hub, wk, gen, tx).await,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "watch history read failed; will retry");
                return Ok(Pass::Retry);
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch history read panicked; will retry");
                return Ok(Pass::Retry);
            }
        };
        // A compaction that landed while the rows were read may have removed some of them;
        // etcd cancels unsynced watchers below the compacted revision, and so do we.
        if next < hub.mvcc.compacted_revision() {
            return cancel_compacted(hub, wk, gen, tx).await;
        }
        let permit = {
            let has_events = {
                let st = hub.lock();
                let Some(w) = st.watchers.get(&wk) else { return Ok(Pass::Done) };
                events.iter().any(|e| w.keeps(e))
            };
            match has_events {
                true => Some(tx.reserve().await.map_err(|_| Closed)?),
                false => None,
            }
        };
        let mut st = hub.lock();
        if !still_unsynced(&st, wk, gen, next) {
            return Ok(Pass::Done); // cancelled (or its stream closed) meanwhile
        }
        let published = st.published;
        let Some(w) = st.watchers.get_mut(&wk) else { return Ok(Pass::Done) };
        let kept: Vec<Event> = events.into_iter().filter(|e| w.keeps(e)).collect();
        if let Some(permit) = permit {
            if !kept.is_empty() {
                permit.send(Delivery::events(w, wk.1, target, kept));
                w.progress_due = false;
            }
        }
        match more {
            Some(rev) => w.next_rev = rev,
            None => {
                w.next_rev = target + 1;
                if published == target {
                    st.mark_synced(wk);
                    return Ok(Pass::Done);
                }
            }
        }
    }
}

fn still_unsynced(st: &super::state::HubState, wk: WatcherKey, gen: u64, next: i64) -> bool {
    st.watchers
        .get(&wk)
        .is_some_and(|w| w.gen == gen && w.phase == Phase::Unsynced && w.next_rev == next)
}

/// Tells a watcher its next revision was compacted: etcd's response with `compact_revision`
/// and `canceled`, whose header revision is 0 (etcd builds it without a revision).
async fn cancel_compacted(
    hub: &Arc<WatchHub>,
    wk: WatcherKey,
    gen: u64,
    tx: &mpsc::Sender<Delivery>,
) -> Result<Pass, Closed> {
    let compacted = hub.mvcc.compacted_revision();
    let permit = tx.reserve().await.map_err(|_| Closed)?;
    let mut st = hub.lock();
    let Some(w) = st.watchers.get_mut(&wk) else { return Ok(Pass::Done) };
    if w.gen != gen || w.phase != Phase::Unsynced {
        return Ok(Pass::Done);
    }
    w.phase = Phase::Compacted;
    let response = WatchResponse {
        watch_id: wk.1,
        canceled: true,
        compact_revision: compacted,
        ..Default::default()
    };
    permit.send(Delivery::control(response, 0));
    Ok(Pass::Done)
}

/// Reads the history of `range` from `next` up to `target`, stopping after events of
/// `MAX_REVISIONS_PER_RESPONSE` distinct revisions as etcd's `eventBatch` does. Returns the
/// events and, if it stopped early, the first revision left for the next round. Reads in
/// windows of `HISTORY_WINDOW` revisions so a long history is never loaded at once.
fn read_batch(
    mvcc: &MvccStore,
    range: &KeyRange,
    next: i64,
    target: i64,
) -> Result<(Vec<Event>, Option<i64>)> {
    let mut out = Vec::new();
    let mut revisions = 0usize;
    let mut last = 0i64;
    let mut from = next;
    while from <= target {
        let to = target.min(from.saturating_add(super::HISTORY_WINDOW - 1));
        for ev in mvcc.events_between(range, from, to)? {
            let rev = ev.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            if rev != last {
                revisions += 1;
                if revisions > MAX_REVISIONS_PER_RESPONSE {
                    return Ok((out, Some(rev)));
                }
                last = rev;
            }
            out.push(ev);
        }
        from = to + 1;
    }
    Ok((out, None))
}

/// Sends a deferred progress answer if the stream has become current.
async fn flush_deferred_progress(
    hub: &Arc<WatchHub>,
    stream: u64,
    tx: &mpsc::Sender<Delivery>,
) -> Result<(), Closed> {
    if !hub.lock().has_deferred_progress(stream) {
        return Ok(());
    }
    let permit = tx.reserve().await.map_err(|_| Closed)?;
    let mut st = hub.lock();
    if st.has_deferred_progress(stream) && st.stream_is_current(stream) {
        st.request_progress(stream, permit);
    }
    Ok(())
}
