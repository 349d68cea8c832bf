//! The hub's shared state: every open stream, every watcher, and the index of synced watchers.
//!
//! Everything here runs under the hub's one `std::sync::Mutex`: it never awaits, never reads
//! RocksDB and never blocks on a channel (only `try_send`, or sending through a permit reserved
//! before the lock was taken). The async halves of the work (reading history, waiting for
//! queue space) live in `stream.rs` and take the lock only to check and commit what they did,
//! which is what makes the unsynced → synced switch gap-free and duplicate-free.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{self, Permit};
use tokio::sync::{watch, Notify};

use crate::error::Error;
use crate::mvcc::KeyRange;
use crate::pb::etcdserverpb::watch_create_request::FilterType;
use crate::pb::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::Event;

use super::{ERR_DUPLICATE_WATCH_ID, ERR_EMPTY_WATCHER_RANGE, INVALID_WATCH_ID};

/// A watcher's identity in the hub: (stream id, watch id). Watch ids are per stream.
pub(crate) type WatcherKey = (u64, i64);

/// One response on its way to a stream, in the stream's order.
///
/// The header carries only the revision; the API layer stamps the rest (cluster, member,
/// raft term). `prev_kv` values are filled by the stream's receiver, off the publish path.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The response; `header.revision` is the revision it speaks for.
    pub response: WatchResponse,
    /// Whether the client allowed this watcher's responses to be split (`fragment = true`).
    pub fragment: bool,
    /// Whether the receiver must look up each event's previous key-value.
    pub(crate) prev_kv: bool,
    /// Keeps the events counted in `etcd_debugging_mvcc_pending_events_total` until this
    /// response is sent or dropped.
    _pending: Option<crate::metrics::PendingEvents>,
}

impl Delivery {
    /// A response without events (created, canceled, progress, compacted) at `revision`.
    pub(crate) fn control(mut response: WatchResponse, revision: i64) -> Delivery {
        response.header = Some(ResponseHeader { revision, ..Default::default() });
        Delivery { response, fragment: false, prev_kv: false, _pending: None }
    }

    /// Events of one watcher, as of `revision`.
    pub(crate) fn events(
        w: &Watcher,
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
    ) -> Delivery {
        let pending = Some(crate::metrics::PendingEvents::new(events.len()));
        let response = WatchResponse {
            header: Some(ResponseHeader { revision, ..Default::default() }),
            watch_id,
            events,
            ..Default::default()
        };
        Delivery { response, fragment: w.fragment, prev_kv: w.prev_kv, _pending: pending }
    }
}

/// Where a watcher stands relative to the hub's published revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Has everything up to the published revision; `publish` feeds it directly.
    Synced,
    /// Behind: its stream's syncer replays history from `next_rev` (new watchers with a past
    /// start revision, and etcd's "victims" whose queue was full).
    Unsynced,
    /// Its next revision was compacted away and it was told so. As in etcd, its id stays
    /// taken (and a cancel is still answered) until the client cancels it.
    Compacted,
}

/// One watcher: what it watches, what it wants, and how far it has got.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// Distinguishes a watcher from a later one that reuses the same id.
    pub(crate) gen: u64,
    pub(crate) range: KeyRange,
    /// The start revision the client asked for (0 = from now); progress for it is only sent
    /// once the store has reached it, as etcd does.
    pub(crate) start_rev: i64,
    /// The first revision not yet handed to the stream's queue.
    pub(crate) next_rev: i64,
    pub(crate) phase: Phase,
    no_put: bool,
    no_delete: bool,
    pub(crate) prev_kv: bool,
    pub(crate) fragment: bool,
    pub(crate) progress_notify: bool,
    /// etcd's per-watcher progress flag: true when nothing was sent since the last tick, so
    /// the next tick sends a progress notification.
    pub(crate) progress_due: bool,
}

impl Watcher {
    /// Whether the watcher's filters let `ev` through.
    pub(crate) fn keeps(&self, ev: &Event) -> bool {
        let put = ev.r#type == EventType::Put as i32;
        !(put && self.no_put || !put && self.no_delete)
    }

    /// Whether everything this watcher will ever need up to `published` has been queued, so
    /// a progress notification at `published` tells the truth (etcd's `progressIfSync`).
    pub(crate) fn is_current(&self, published: i64) -> bool {
        self.phase == Phase::Synced && published >= self.start_rev
    }
}

/// What a stream's tasks share with the hub.
pub(crate) struct StreamShared {
    /// Wakes the stream's syncer: a watcher fell behind, or a deferred progress may be due.
    pub(crate) wake: Notify,
    /// Set once the hub shuts down, so the stream ends with `Error::Stopped`.
    pub(crate) closed: watch::Sender<bool>,
}

/// The hub's record of one open stream.
pub(crate) struct StreamSlot {
    /// The stream's bounded queue (see `STREAM_QUEUE_CAPACITY`).
    pub(crate) tx: mpsc::Sender<Delivery>,
    pub(crate) shared: Arc<StreamShared>,
    /// Every watch id in use on the stream, whatever its phase.
    pub(crate) ids: BTreeSet<i64>,
    /// etcd's `nextID`: the next candidate for an auto-assigned id.
    next_auto_id: i64,
    /// A progress request arrived while some watcher was behind; answer once all caught up.
    pub(crate) deferred_progress: bool,
}

/// Synced watchers by key, so `publish` finds an event's watchers without scanning them all.
#[derive(Default)]
struct SyncedIndex {
    single: HashMap<Vec<u8>, HashSet<WatcherKey>>,
    ranges: HashMap<WatcherKey, KeyRange>,
}

impl SyncedIndex {
    fn insert(&mut self, wk: WatcherKey, range: &KeyRange) {
        match range {
            KeyRange::Single(key) => {
                self.single.entry(key.clone()).or_default().insert(wk);
            }
            _ => {
                self.ranges.insert(wk, range.clone());
            }
        }
    }

    fn remove(&mut self, wk: WatcherKey, range: &KeyRange) {
        match range {
            KeyRange::Single(key) => {
                if let Some(set) = self.single.get_mut(key) {
                    set.remove(&wk);
                    if set.is_empty() {
                        self.single.remove(key);
                    }
                }
            }
            _ => {
                self.ranges.remove(&wk);
            }
        }
    }

    fn matching(&self, key: &[u8], mut found: impl FnMut(WatcherKey)) {
        if let Some(set) = self.single.get(key) {
            set.iter().copied().for_each(&mut found);
        }
        for (wk, range) in &self.ranges {
            if range.contains(key) {
                found(*wk);
            }
        }
    }

    fn clear(&mut self) {
        self.single.clear();
        self.ranges.clear();
    }
}

/// Everything the hub's lock protects.
pub(crate) struct HubState {
    /// The newest revision handed to `publish`: every event up to it is either queued to its
    /// synced watchers or readable from history. Headers of created, canceled and progress
    /// responses use it, never the store's (possibly not yet published) current revision.
    pub(crate) published: i64,
    /// Set by `WatchHub::shutdown`; no stream opens afterwards.
    pub(crate) closed: bool,
    next_stream: u64,
    next_gen: u64,
    pub(crate) streams: HashMap<u64, StreamSlot>,
    pub(crate) watchers: HashMap<WatcherKey, Watcher>,
    synced: SyncedIndex,
    /// Streams with a deferred progress request, woken on every publish.
    deferred: HashSet<u64>,
}

/// How a create request turned out.
pub(crate) struct Created {
    /// The response to queue (created, or created + canceled with the reason).
    pub(crate) delivery: Delivery,
    /// The new watcher starts in the past and the syncer must catch it up.
    pub(crate) needs_sync: bool,
}

impl HubState {
    /// An empty hub at `published`.
    pub(crate) fn new(published: i64) -> HubState {
        HubState {
            published,
            closed: false,
            next_stream: 1,
            next_gen: 1,
            streams: HashMap::new(),
            watchers: HashMap::new(),
            synced: SyncedIndex::default(),
            deferred: HashSet::new(),
        }
    }

    /// Registers a stream and returns its id.
    pub(crate) fn add_stream(
        &mut self,
        tx: mpsc::Sender<Delivery>,
        shared: Arc<StreamShared>,
    ) -> u64 {
        let id = self.next_stream;
        self.next_stream += 1;
        let slot = StreamSlot {
            tx,
            shared,
            ids: BTreeSet::new(),
            next_auto_id: 0,
            deferred_progress: false,
        };
        self.streams.insert(id, slot);
        id
    }

    /// Forgets a stream and all its watchers.
    pub(crate) fn remove_stream(&mut self, stream: u64) -> Option<StreamSlot> {
        let slot = self.streams.remove(&stream)?;
        for id in &slot.ids {
            self.drop_watcher((stream, *id));
        }
        self.deferred.remove(&stream);
        Some(slot)
    }

    /// Forgets every stream (hub shutdown).
    pub(crate) fn remove_all(&mut self) -> Vec<StreamSlot> {
        self.watchers.clear();
        self.synced.clear();
        self.deferred.clear();
        self.streams.drain().map(|(_, slot)| slot).collect()
    }

    fn drop_watcher(&mut self, wk: WatcherKey) {
        if let Some(w) = self.watchers.remove(&wk) {
            if w.phase == Phase::Synced {
                self.synced.remove(wk, &w.range);
            }
        }
    }

    /// Handles a create request on `stream` as etcd 3.5's `recvLoop` + `watchStream.Watch`.
    /// `None` if the stream is gone.
    pub(crate) fn create(&mut self, stream: u64, req: &WatchCreateRequest) -> Option<Created> {
        let published = self.published;
        let slot = self.streams.get_mut(&stream)?;
        let reject = |reason: String| Created {
            delivery: Delivery::control(
                WatchResponse {
                    watch_id: INVALID_WATCH_ID,
                    created: true,
                    canceled: true,
                    cancel_reason: reason,
                    ..Default::default()
                },
                published,
            ),
            needs_sync: false,
        };
        // etcd >= 3.5.8 refuses negative start revisions this way; 3.5.1 instead created the
        // watcher and then cancelled it with compact_revision -1 (an artefact of its -1
        // "never compacted" marker), which oxcd has no equivalent for.
        if req.start_revision < 0 {
            return Some(reject(Error::Compacted.to_string()));
        }
        // "\0" is the smallest key: an empty key watches from the very start.
        let key: &[u8] = if req.key.is_empty() { &[0] } else { &req.key };
        let range = KeyRange::new(key, &req.range_end);
        if range.is_empty() {
            return Some(reject(ERR_EMPTY_WATCHER_RANGE.to_string()));
        }
        let id = if req.watch_id == super::AUTO_WATCH_ID {
            while slot.ids.contains(&slot.next_auto_id) {
                slot.next_auto_id += 1;
            }
            let id = slot.next_auto_id;
            slot.next_auto_id += 1;
            id
        } else if slot.ids.contains(&req.watch_id) {
            return Some(reject(ERR_DUPLICATE_WATCH_ID.to_string()));
        } else {
            req.watch_id
        };
        // etcd: a watcher starting now or in the future is synced; one starting at or
        // before the current revision replays history first.
        let (phase, next_rev) = match req.start_revision {
            0 => (Phase::Synced, published + 1),
            start if start > published => (Phase::Synced, start),
            start => (Phase::Unsynced, start),
        };
        let filters = |f: FilterType| req.filters.contains(&(f as i32));
        let watcher = Watcher {
            gen: self.next_gen,
            range,
            start_rev: req.start_revision,
            next_rev,
            phase,
            no_put: filters(FilterType::Noput),
            no_delete: filters(FilterType::Nodelete),
            prev_kv: req.prev_kv,
            fragment: req.fragment,
            progress_notify: req.progress_notify,
            progress_due: true,
        };
        self.next_gen += 1;
        slot.ids.insert(id);
        if phase == Phase::Synced {
            self.synced.insert((stream, id), &watcher.range);
        }
        self.watchers.insert((stream, id), watcher);
        let created = WatchResponse { watch_id: id, created: true, ..Default::default() };
        Some(Created {
            delivery: Delivery::control(created, published),
            needs_sync: phase == Phase::Unsynced,
        })
    }

    /// Cancels a watcher. `None` (and no response, as etcd) if the id is unknown.
    pub(crate) fn cancel(&mut self, stream: u64, watch_id: i64) -> Option<Delivery> {
        let slot = self.streams.get_mut(&stream)?;
        if !slot.ids.remove(&watch_id) {
            return None;
        }
        self.drop_watcher((stream, watch_id));
        let canceled = WatchResponse { watch_id, canceled: true, ..Default::default() };
        Some(Delivery::control(canceled, self.published))
    }

    /// Whether every watcher of the stream has had everything up to the published revision
    /// queued (compacted ones will never get more, so they do not hold progress back).
    pub(crate) fn stream_is_current(&self, stream: u64) -> bool {
        let Some(slot) = self.streams.get(&stream) else { return false };
        slot.ids.iter().all(|id| {
            self.watchers
                .get(&(stream, *id))
                .is_none_or(|w| w.phase == Phase::Compacted || w.is_current(self.published))
        })
    }

    /// Answers a progress request (etcd's `RequestProgressAll`): sends `watch_id = -1` at the
    /// published revision through `permit` if the stream is current, else defers it.
    pub(crate) fn request_progress(&mut self, stream: u64, permit: Permit<'_, Delivery>) {
        if self.stream_is_current(stream) {
            permit.send(self.progress_response(INVALID_WATCH_ID));
            if let Some(slot) = self.streams.get_mut(&stream) {
                slot.deferred_progress = false;
            }
            self.deferred.remove(&stream);
        } else if let Some(slot) = self.streams.get_mut(&stream) {
            slot.deferred_progress = true;
            self.deferred.insert(stream);
        }
    }

    /// Whether a deferred progress request waits on `stream`.
    pub(crate) fn has_deferred_progress(&self, stream: u64) -> bool {
        self.streams.get(&stream).is_some_and(|s| s.deferred_progress)
    }

    fn progress_response(&self, watch_id: i64) -> Delivery {
        Delivery::control(WatchResponse { watch_id, ..Default::default() }, self.published)
    }

    /// One tick of the stream's progress timer (etcd's `progressTicker` case): every
    /// `progress_notify` watcher that got nothing since the last tick and is current gets an
    /// empty response at the published revision. A full queue skips it, as etcd does.
    pub(crate) fn progress_tick(&mut self, stream: u64) {
        let published = self.published;
        let Some(slot) = self.streams.get(&stream) else { return };
        for id in &slot.ids {
            let Some(w) = self.watchers.get_mut(&(stream, *id)) else { continue };
            if !w.progress_notify {
                continue;
            }
            if w.progress_due && w.is_current(published) {
                let progress = WatchResponse { watch_id: *id, ..Default::default() };
                let _ = slot.tx.try_send(Delivery::control(progress, published));
            }
            w.progress_due = true;
        }
    }

    /// Hands one revision's events to the synced watchers that want them. A watcher whose
    /// queue is full becomes unsynced from this revision on (etcd's victims) and its stream
    /// is pushed to `wake`, so the syncer replays what it missed from history.
    pub(crate) fn deliver(
        &mut self,
        rev: i64,
        events: &[Event],
        wake: &mut Vec<Arc<StreamShared>>,
    ) {
        let mut matched: HashMap<WatcherKey, Vec<&Event>> = HashMap::new();
        for ev in events {
            if let Some(kv) = &ev.kv {
                self.synced.matching(&kv.key, |wk| matched.entry(wk).or_default().push(ev));
            }
        }
        for (wk, evs) in matched {
            let Some(w) = self.watchers.get_mut(&wk) else { continue };
            if w.next_rev > rev {
                continue; // started in the future
            }
            let evs: Vec<Event> = evs.into_iter().filter(|e| w.keeps(e)).cloned().collect();
            if evs.is_empty() {
                w.next_rev = rev + 1;
                continue;
            }
            let Some(slot) = self.streams.get(&wk.0) else { continue };
            match slot.tx.try_send(Delivery::events(w, wk.1, rev, evs)) {
                Ok(()) => {
                    w.next_rev = rev + 1;
                    w.progress_due = false;
                }
                Err(TrySendError::Full(_)) => {
                    w.phase = Phase::Unsynced;
                    w.next_rev = rev;
                    self.synced.remove(wk, &w.range);
                    wake.push(slot.shared.clone());
                }
                // The receiver is gone and the stream is being removed.
                Err(TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Streams whose deferred progress request may have become answerable.
    pub(crate) fn deferred_streams(&self) -> impl Iterator<Item = Arc<StreamShared>> + '_ {
        self.deferred.iter().filter_map(|s| self.streams.get(s)).map(|slot| slot.shared.clone())
    }

    /// Makes a caught-up watcher synced; the caller checked that no revision was published
    /// since its last history read.
    pub(crate) fn mark_synced(&mut self, wk: WatcherKey) {
        if let Some(w) = self.watchers.get_mut(&wk) {
            if w.phase != Phase::Synced {
                w.phase = Phase::Synced;
                self.synced.insert(wk, &w.range);
            }
        }
    }

    /// Moves every synced watcher back to unsynced (after the store was replaced by a raft
    /// snapshot, as etcd's `Restore`), returning the streams to wake.
    pub(crate) fn unsync_all(&mut self, old_published: i64) -> Vec<Arc<StreamShared>> {
        let mut wake = Vec::new();
        for (wk, w) in self.watchers.iter_mut() {
            if w.phase == Phase::Synced {
                w.phase = Phase::Unsynced;
                w.next_rev = w.next_rev.max(old_published + 1);
                if let Some(slot) = self.streams.get(&wk.0) {
                    wake.push(slot.shared.clone());
                }
            }
        }
        self.synced.clear();
        wake
    }

    /// Number of registered watchers, in any phase.
    pub(crate) fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// Open streams, watchers, and watchers replaying history (etcd's unsynced group).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let unsynced = self.watchers.values().filter(|w| w.phase == Phase::Unsynced).count();
        (self.streams.len(), self.watchers.len(), unsynced)
    }
}
