//! The watch hub: etcd's watchable store, feeding every watch stream from apply and history.
//!
//! Owns the watchers and their delivery; reads the MVCC store (history replay, `prev_kv`) but
//! never writes it, and never sees tonic (the gRPC side is `api/watch.rs`).
//!
//! # How events reach a client
//! - Apply calls [`WatchHub::publish`] after every committed batch. It runs under the hub's
//!   lock, never awaits and never does I/O: each *synced* watcher that matches gets one
//!   response per revision, pushed with `try_send` into its stream's bounded queue.
//! - A watcher that starts at or before the current revision is *unsynced*: its stream's
//!   syncer task replays history (`MvccStore::events_between`) and switches it to synced under
//!   the lock once no revision was published since its last read — no gap, no duplicate.
//! - If a stream's queue is full, `publish` does not wait and does not drop: the watcher
//!   becomes unsynced again from the first revision it missed, and the syncer replays it from
//!   history as soon as the client reads (etcd's "victims"). So one slow client only slows
//!   itself, and memory per stream is bounded by [`STREAM_QUEUE_CAPACITY`].
//! - A watcher whose next revision is compacted gets etcd's `compact_revision` + `canceled`
//!   response.
//!
//! `state.rs` holds what the lock protects, `stream.rs` the per-stream halves and the syncer,
//! `fragment.rs` etcd's splitting of large responses.

mod fragment;
mod state;
mod stream;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, watch, Notify};

use crate::mvcc::MvccStore;
use crate::pb::mvccpb::Event;

pub use fragment::fragment;
pub use state::Delivery;
use state::{HubState, StreamShared};
pub use stream::{WatchControl, WatchReceiver};

/// Capacity of each stream's response queue, shared by all its watchers: etcd's
/// `chanBufLen` (128). When full, live events are replayed from history instead of queued.
pub const STREAM_QUEUE_CAPACITY: usize = 128;

/// At most this many distinct revisions go into one catch-up response: etcd's
/// `watchBatchMaxRevs`.
pub const MAX_REVISIONS_PER_RESPONSE: usize = 1000;

/// History is read this many revisions at a time while catching up, bounding the memory of
/// one read however far behind a watcher starts.
pub const HISTORY_WINDOW: i64 = 10_000;

/// How often `progress_notify` watchers hear the current revision when idle: etcd's
/// `progressReportInterval` (10 minutes; plus up to 10% random jitter per stream).
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(600);

/// Back-off before retrying a history read that failed (etcd retries unsynced watchers every
/// 100 ms).
pub const RESYNC_RETRY: Duration = Duration::from_millis(100);

/// etcd's default `--max-request-bytes`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// etcd's `grpcOverheadBytes`: a watch response may exceed the request limit by this much
/// before a fragmenting watcher's response is split.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// The watch id a client sends to ask for an automatically assigned one.
pub const AUTO_WATCH_ID: i64 = 0;

/// The watch id of responses that belong to no watcher: rejected creates and stream-wide
/// progress notifications (clientv3's `InvalidWatchID`).
pub const INVALID_WATCH_ID: i64 = -1;

/// etcd's `ErrEmptyWatcherRange` text, sent as a cancel reason.
pub const ERR_EMPTY_WATCHER_RANGE: &str = "mvcc: watcher range is empty";

/// etcd's `ErrWatcherDuplicateID` text, sent as a cancel reason.
pub const ERR_DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// The member's watchers and the machinery that feeds them. One per member, shared by apply
/// (which publishes) and the Watch service (which opens streams).
pub struct WatchHub {
    /// The history and `prev_kv` source; read off the hub's lock only.
    mvcc: Arc<MvccStore>,
    /// Streams, watchers and the published revision. `std::sync::Mutex` because `publish` is
    /// synchronous and nothing awaits while holding it.
    state: Mutex<HubState>,
    /// Progress interval for streams opened from now on (etcd reads it per stream, too).
    progress_interval: Mutex<Duration>,
    /// The member's `--max-request-bytes`, which bounds unfragmented responses.
    max_request_bytes: AtomicUsize,
}

impl WatchHub {
    /// A hub over `mvcc`, starting at its current revision; create it before apply runs.
    pub fn new(mvcc: Arc<MvccStore>) -> Arc<WatchHub> {
        let published = mvcc.current_revision();
        Arc::new(WatchHub {
            mvcc,
            state: Mutex::new(HubState::new(published)),
            progress_interval: Mutex::new(DEFAULT_PROGRESS_INTERVAL),
            max_request_bytes: AtomicUsize::new(DEFAULT_MAX_REQUEST_BYTES),
        })
    }

    /// Hands a committed batch's events (in revision order, possibly several revisions) to
    /// the synced watchers. Never blocks: full queues turn their watchers unsynced, and their
    /// syncers replay the missed revisions from history.
    pub fn publish(&self, events: &[Event]) {
        let mut wake: Vec<Arc<StreamShared>> = Vec::new();
        {
            let mut st = self.lock();
            let mut rest = events;
            while let Some(first) = rest.first() {
                let rev = revision_of(first);
                let n = rest.iter().take_while(|e| revision_of(e) == rev).count();
                let (group, tail) = rest.split_at(n);
                rest = tail;
                if rev <= st.published {
                    tracing::warn!(
                        rev,
                        published = st.published,
                        "watch hub: ignoring already published revision"
                    );
                    continue;
                }
                st.deliver(rev, group, &mut wake);
                st.published = rev;
            }
            wake.extend(st.deferred_streams());
        }
        for shared in wake {
            shared.wake.notify_one();
        }
    }

    /// Opens a watch stream: the control half takes the client's requests, the receiver
    /// yields responses in order. Must be called inside a Tokio runtime (it spawns the
    /// stream's syncer task, which ends with the stream).
    pub fn open_stream(self: &Arc<Self>) -> (WatchControl, WatchReceiver) {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE_CAPACITY);
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(StreamShared { wake: Notify::new(), closed: closed_tx });
        let stream = {
            let mut st = self.lock();
            if st.closed {
                shared.closed.send_replace(true);
            }
            st.add_stream(tx.clone(), shared.clone())
        };
        let interval = self.progress_interval();
        let syncer = tokio::spawn(stream::run_syncer(
            self.clone(),
            stream,
            shared.clone(),
            tx.clone(),
            interval,
        ));
        let control = WatchControl { hub: self.clone(), stream, tx, shared };
        let receiver =
            WatchReceiver { hub: self.clone(), stream, rx, closed: closed_rx, syncer, done: false };
        (control, receiver)
    }

    /// Sets the idle progress interval for streams opened from now on (tests use a short
    /// one; etcd's `--experimental-watch-progress-notify-interval`).
    pub fn set_progress_interval(&self, interval: Duration) {
        *self.progress_interval.lock().unwrap_or_else(|e| e.into_inner()) = interval;
    }

    /// Sets the member's `--max-request-bytes`, from which the fragmenting limit follows.
    pub fn set_max_request_bytes(&self, bytes: usize) {
        self.max_request_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The size at which a fragmenting watcher's response is split: max request bytes plus
    /// gRPC overhead, as etcd's watch server computes it.
    pub fn fragment_limit(&self) -> usize {
        self.max_request_bytes.load(Ordering::Relaxed).saturating_add(GRPC_OVERHEAD_BYTES)
    }

    /// The newest published revision.
    pub fn revision(&self) -> i64 {
        self.lock().published
    }

    /// Number of watchers on all streams (for metrics and tests).
    pub fn watcher_count(&self) -> usize {
        self.lock().watcher_count()
    }

    /// Sets the watch gauges (streams, watchers, unsynced watchers) from the hub's state.
    pub fn report_metrics(&self) {
        let (streams, watchers, unsynced) = self.lock().counts();
        let gauge =
            |g: &prometheus::IntGauge, n: usize| g.set(i64::try_from(n).unwrap_or(i64::MAX));
        gauge(&crate::metrics::WATCH_STREAMS, streams);
        gauge(&crate::metrics::WATCHERS, watchers);
        gauge(&crate::metrics::SLOW_WATCHERS, unsynced);
    }

    /// Call after the store's contents were replaced (raft snapshot install): every synced
    /// watcher replays from history what it has not seen, as etcd's `Restore` does.
    pub fn restored(&self) {
        let current = self.mvcc.current_revision(); // read before our lock: lock order is mvcc → hub
        let wake = {
            let mut st = self.lock();
            let old = st.published;
            st.published = current;
            st.unsync_all(old)
        };
        for shared in wake {
            shared.wake.notify_one();
        }
    }

    /// Closes every stream: their receivers yield `Error::Stopped` and the streams end.
    pub fn shutdown(&self) {
        let slots = {
            let mut st = self.lock();
            st.closed = true;
            st.remove_all()
        };
        for slot in slots {
            slot.shared.closed.send_replace(true);
            slot.shared.wake.notify_one();
        }
    }

    /// The hub's long-lived role: waits for `shutdown`, then closes every stream.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.shutdown();
    }

    fn progress_interval(&self) -> Duration {
        let base = *self.progress_interval.lock().unwrap_or_else(|e| e.into_inner());
        // etcd adds up to 10% jitter so streams opened together do not report together.
        let jitter_ms = u64::try_from(base.as_millis() / 10).unwrap_or(0);
        let jitter = match jitter_ms {
            0 => 0,
            n => rand::thread_rng().gen_range(0..n),
        };
        base + Duration::from_millis(jitter)
    }

    /// Removes a stream and its watchers (its receiver was dropped).
    pub(crate) fn close_stream(&self, stream: u64) {
        let slot = self.lock().remove_stream(stream);
        if let Some(slot) = slot {
            slot.shared.wake.notify_one();
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic under the lock leaves the state as consistent as its last completed step;
        // keep serving rather than poisoning every stream.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn revision_of(ev: &Event) -> i64 {
    ev.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}
