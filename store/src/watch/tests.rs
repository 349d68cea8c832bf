//! The watch hub against a real MVCC store on RocksDB: etcd's watch semantics end to end, from
//! the writer apply uses and `WatchHub::publish` to what a stream's receiver yields.
//!
//! "Nothing else was sent" is checked without sleeping: a progress request is answered only once
//! every watcher of the stream is current, after everything already queued, so if the next
//! response is that answer, no event was (or will be) queued before it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::error::Error;
use crate::mvcc::{KeyRange, MvccWriter};
use crate::pb::etcdserverpb::watch_create_request::FilterType;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchResponse};
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::{Event, KeyValue};
use crate::storage::Storage;

/// How long a test waits for a response it expects before failing.
const PATIENCE: Duration = Duration::from_secs(5);

/// A member's MVCC store and watch hub over a RocksDB in a temporary directory.
#[derive(Clone)]
struct Member {
    _dir: Arc<tempfile::TempDir>,
    mvcc: Arc<MvccStore>,
    hub: Arc<WatchHub>,
}

impl Member {
    fn new() -> Member {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db")).unwrap();
        let mvcc = Arc::new(MvccStore::open(storage).unwrap());
        let hub = WatchHub::new(mvcc.clone());
        Member { _dir: Arc::new(dir), mvcc, hub }
    }

    /// One apply batch, as `Applier::apply` runs it: every write through one `MvccWriter`,
    /// commit, then publish the events. Returns the revision after the batch.
    fn apply(&self, write: impl FnOnce(&mut MvccWriter<'_>)) -> i64 {
        let events = self.commit(write);
        if !events.is_empty() {
            self.hub.publish(&events);
        }
        self.mvcc.current_revision()
    }

    /// Writes and commits a batch without publishing it (apply between the two steps).
    fn commit(&self, write: impl FnOnce(&mut MvccWriter<'_>)) -> Vec<Event> {
        let mut writer = self.mvcc.writer();
        write(&mut writer);
        writer.commit().unwrap()
    }

    fn put(&self, key: &str, value: &str) -> i64 {
        self.apply(|w| txn_put(w, &[(key, value)]))
    }

    fn delete(&self, key: &str) -> i64 {
        self.apply(|w| {
            let mut txn = w.txn();
            txn.delete_range(&KeyRange::new(key.as_bytes(), b""));
            txn.finish();
        })
    }

    fn compact(&self, rev: i64) {
        self.apply(|w| w.compact(rev).unwrap());
    }

    /// `n` revisions in one apply batch, each putting `key` (values "0", "1", ...).
    fn put_many(&self, key: &str, n: usize) -> i64 {
        self.apply(|w| {
            for i in 0..n {
                txn_put(w, &[(key, &i.to_string())]);
            }
        })
    }
}

/// One revision putting every pair, in order.
fn txn_put(w: &mut MvccWriter<'_>, kvs: &[(&str, &str)]) {
    let mut txn = w.txn();
    for (key, value) in kvs {
        txn.put(key.as_bytes(), value.as_bytes().to_vec(), 0);
    }
    txn.finish();
}

/// One client stream: the control half and the receiver, as `api/watch.rs` holds them.
struct Client {
    hub: Arc<WatchHub>,
    control: WatchControl,
    rx: WatchReceiver,
}

impl Client {
    fn open(m: &Member) -> Client {
        let (control, rx) = m.hub.open_stream();
        Client { hub: m.hub.clone(), control, rx }
    }

    async fn delivery(&mut self) -> Delivery {
        receive(&mut self.rx).await
    }

    async fn next(&mut self) -> WatchResponse {
        self.delivery().await.response
    }

    /// Creates a watcher and returns its id, checking the "created" answer.
    async fn watch(&mut self, req: WatchCreateRequest) -> i64 {
        self.control.create(req).await;
        let r = self.next().await;
        assert!(r.created && !r.canceled && r.events.is_empty(), "not created: {r:?}");
        r.watch_id
    }

    /// Sends a create that must be refused; returns the reason.
    async fn refused(&mut self, req: WatchCreateRequest) -> String {
        self.control.create(req).await;
        let r = self.next().await;
        assert!(r.created && r.canceled, "not refused: {r:?}");
        assert_eq!(r.watch_id, INVALID_WATCH_ID);
        assert_eq!(header_rev(&r), self.hub.revision());
        r.cancel_reason
    }

    /// Requests progress and returns every response queued before its answer, checking that
    /// the answer speaks for the published revision.
    async fn drain(&mut self) -> Vec<WatchResponse> {
        self.control.request_progress().await;
        let mut before = Vec::new();
        loop {
            let r = self.next().await;
            if is_progress(&r) {
                assert_eq!(header_rev(&r), self.hub.revision(), "progress revision");
                return before;
            }
            before.push(r);
        }
    }

    /// Asserts that nothing is queued for the client or will be for what was published.
    async fn assert_idle(&mut self) {
        let extra = self.drain().await;
        assert!(extra.is_empty(), "unexpected responses: {extra:?}");
    }
}

/// The next delivery of a stream (with `prev_kv` filled), failing after `PATIENCE`.
async fn receive(rx: &mut WatchReceiver) -> Delivery {
    match tokio::time::timeout(PATIENCE, rx.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(other) => panic!("stream ended: {other:?}"),
        Err(_) => panic!("no response within {PATIENCE:?}"),
    }
}

fn watch_key(key: &str) -> WatchCreateRequest {
    WatchCreateRequest { key: key.into(), ..Default::default() }
}

fn watch_range(key: &str, range_end: &str) -> WatchCreateRequest {
    WatchCreateRequest { key: key.into(), range_end: range_end.into(), ..Default::default() }
}

fn header_rev(r: &WatchResponse) -> i64 {
    r.header.as_ref().map_or(0, |h| h.revision)
}

fn is_progress(r: &WatchResponse) -> bool {
    r.watch_id == INVALID_WATCH_ID
        && !r.created
        && !r.canceled
        && r.compact_revision == 0
        && r.events.is_empty()
}

fn kv(ev: &Event) -> &KeyValue {
    ev.kv.as_ref().expect("event without kv")
}

fn revs(r: &WatchResponse) -> Vec<i64> {
    r.events.iter().map(|e| kv(e).mod_revision).collect()
}

/// Each event as "put key=value@rev" / "delete key@rev".
fn describe(r: &WatchResponse) -> Vec<String> {
    r.events
        .iter()
        .map(|e| {
            let kv = kv(e);
            let key = String::from_utf8_lossy(&kv.key);
            if e.r#type == EventType::Put as i32 {
                format!("put {key}={}@{}", String::from_utf8_lossy(&kv.value), kv.mod_revision)
            } else {
                format!("delete {key}@{}", kv.mod_revision)
            }
        })
        .collect()
}

/// Responses grouped by watch id, each watcher's in the order received.
fn by_watcher(responses: Vec<WatchResponse>) -> BTreeMap<i64, Vec<WatchResponse>> {
    let mut out: BTreeMap<i64, Vec<WatchResponse>> = BTreeMap::new();
    for r in responses {
        out.entry(r.watch_id).or_default().push(r);
    }
    out
}

/// Every event a watcher got, described, across its responses.
fn events_of(responses: &[WatchResponse]) -> Vec<String> {
    responses.iter().flat_map(describe).collect()
}

/// Checks that responses carry events of strictly increasing revisions with none skipped,
/// starting at `first`; returns the revision after the last.
fn assert_contiguous(responses: &[WatchResponse], first: i64) -> i64 {
    let mut expected = first;
    for r in responses {
        assert!(!r.events.is_empty(), "event response without events: {r:?}");
        for rev in revs(r) {
            assert_eq!(rev, expected, "gap or duplicate");
            expected += 1;
        }
        assert!(header_rev(r) >= expected - 1, "header behind its events: {r:?}");
    }
    expected
}

#[tokio::test]
async fn start_revision_zero_watches_from_now() {
    let m = Member::new();
    m.put("a", "old");
    let mut c = Client::open(&m);
    c.control.create(watch_key("a")).await;
    let created = c.next().await;
    assert!(created.created && !created.canceled);
    assert_eq!((created.watch_id, header_rev(&created)), (0, 2));

    m.put("a", "1");
    m.put("b", "x");
    m.put("a", "2");
    let first = c.next().await;
    assert_eq!((first.watch_id, header_rev(&first)), (0, 3));
    assert_eq!(describe(&first), ["put a=1@3"]);
    let second = c.next().await;
    assert_eq!(describe(&second), ["put a=2@5"]);
    assert_eq!(header_rev(&second), 5);
    c.assert_idle().await;
}

#[tokio::test]
async fn past_start_revision_replays_history_then_goes_live() {
    let m = Member::new();
    for i in 0..5 {
        m.put("a", &i.to_string()); // revisions 2..=6
    }
    m.put("b", "x"); // 7
    let mut c = Client::open(&m);
    let id = c.watch(WatchCreateRequest { start_revision: 4, ..watch_key("a") }).await;

    let history = c.next().await;
    assert_eq!(history.watch_id, id);
    assert_eq!(describe(&history), ["put a=2@4", "put a=3@5", "put a=4@6"]);
    assert_eq!(header_rev(&history), 7, "a catch-up response speaks for the revision read");

    m.put("a", "live");
    assert_eq!(describe(&c.next().await), ["put a=live@8"]);
    c.assert_idle().await;

    // The very first revision of the store, and a start at the current revision.
    let all = c.watch(WatchCreateRequest { start_revision: 1, ..watch_key("a") }).await;
    let now = c.watch(WatchCreateRequest { start_revision: 8, ..watch_key("a") }).await;
    let got = by_watcher(c.drain().await);
    assert_eq!(events_of(&got[&all]).len(), 6);
    assert_eq!(events_of(&got[&now]), ["put a=live@8"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_racing_live_writes_has_no_gap_and_no_duplicate() {
    let m = Member::new();
    m.apply(|w| {
        for i in 0..1500 {
            txn_put(w, &[(&format!("k{}", i % 3), "h")]);
        }
    });
    let mut c = Client::open(&m);
    let writer = m.clone();
    let live = tokio::task::spawn_blocking(move || {
        for i in 0..1500 {
            writer.put(&format!("k{}", i % 3), "l");
        }
        writer.mvcc.current_revision()
    });
    let id = c.watch(WatchCreateRequest { start_revision: 2, ..watch_range("k", "l") }).await;
    let last = live.await.unwrap();
    assert_eq!(last, 3001);

    let mut responses = Vec::new();
    let mut seen = 0;
    while seen < last {
        let r = c.next().await;
        assert_eq!(r.watch_id, id);
        seen = revs(&r).last().copied().unwrap_or(seen);
        responses.push(r);
    }
    assert_eq!(assert_contiguous(&responses, 2), last + 1);
    assert!(
        responses.windows(2).all(|p| header_rev(&p[0]) <= header_rev(&p[1])),
        "header revisions go back"
    );
    c.assert_idle().await;
}

#[tokio::test]
async fn future_start_revision_waits_for_it() {
    let m = Member::new();
    let now = m.put("a", "0");
    let mut c = Client::open(&m);
    let id = c.watch(WatchCreateRequest { start_revision: now + 3, ..watch_key("a") }).await;
    // etcd withholds progress until the store reaches a watcher's start revision
    // (`progressIfSync`): the answer comes after the first event, not before it.
    c.control.request_progress().await;
    m.put("a", "1");
    m.put("a", "2");
    m.put("a", "3");
    let first = c.next().await;
    assert_eq!((first.watch_id, describe(&first)), (id, vec![format!("put a=3@{}", now + 3)]));
    let progress = c.next().await;
    assert!(is_progress(&progress), "{progress:?}");
    assert_eq!(header_rev(&progress), now + 3);
    m.put("a", "4");
    m.put("a", "5");
    let got: Vec<_> = c.drain().await;
    assert!(got.iter().all(|r| r.watch_id == id));
    assert_eq!(got.iter().map(describe).collect::<Vec<_>>(), [["put a=4@6"], ["put a=5@7"]]);
}

#[tokio::test]
async fn prefix_and_range_watchers_see_only_their_keys() {
    let m = Member::new();
    let mut c = Client::open(&m);
    let prefix = c.watch(watch_range("foo", "fop")).await;
    let from_m = c.watch(watch_range("m", "\0")).await;
    let single = c.watch(watch_key("foo")).await;
    let between = c.watch(watch_range("a", "c")).await;
    let everything = c.watch(watch_range("", "\0")).await;
    let other = c.watch(watch_key("nothing")).await;
    for key in ["foo", "foo/bar", "fop", "fo", "zz", "b", "m", "c"] {
        m.put(key, "v");
    }
    let got = by_watcher(c.drain().await);
    let keys = |id: i64| -> Vec<String> {
        got.get(&id)
            .map(|rs| {
                rs.iter()
                    .flat_map(|r| {
                        r.events.iter().map(|e| String::from_utf8_lossy(&kv(e).key).into())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(keys(prefix), ["foo", "foo/bar"]);
    assert_eq!(keys(from_m), ["zz", "m"]);
    assert_eq!(keys(single), ["foo"]);
    assert_eq!(keys(between), ["b"]);
    assert_eq!(keys(everything), ["foo", "foo/bar", "fop", "fo", "zz", "b", "m", "c"]);
    assert_eq!(keys(other), Vec::<String>::new());
    // One response per revision and watcher.
    assert!(got.values().flatten().all(|r| r.events.len() == 1));
}

#[tokio::test]
async fn filters_drop_puts_or_deletes() {
    let m = Member::new();
    let mut c = Client::open(&m);
    let filtered = |filters: Vec<FilterType>| WatchCreateRequest {
        filters: filters.into_iter().map(|f| f as i32).collect(),
        ..watch_range("a", "c")
    };
    let all = c.watch(filtered(vec![])).await;
    let no_put = c.watch(filtered(vec![FilterType::Noput])).await;
    let no_delete = c.watch(filtered(vec![FilterType::Nodelete])).await;
    let neither = c.watch(filtered(vec![FilterType::Noput, FilterType::Nodelete])).await;

    m.put("a", "1"); // 2
    m.put("b", "1"); // 3
    m.delete("a"); // 4
    m.apply(|w| {
        // 5: a put and a delete in one revision
        let mut txn = w.txn();
        txn.put(b"a", b"2".to_vec(), 0);
        txn.delete_range(&KeyRange::new(b"b", b""));
        txn.finish();
    });
    m.delete("zz"); // deletes nothing: no revision, no event
    let got = by_watcher(c.drain().await);
    let responses = |id: i64| -> Vec<Vec<String>> {
        got.get(&id).map(|rs| rs.iter().map(describe).collect()).unwrap_or_default()
    };
    assert_eq!(
        responses(all),
        [vec!["put a=1@2"], vec!["put b=1@3"], vec!["delete a@4"], vec!["put a=2@5", "delete b@5"]]
    );
    assert_eq!(responses(no_put), [["delete a@4"], ["delete b@5"]]);
    assert_eq!(responses(no_delete), [["put a=1@2"], ["put b=1@3"], ["put a=2@5"]]);
    assert_eq!(responses(neither), Vec::<Vec<String>>::new());
    assert_eq!(m.mvcc.current_revision(), 5);
}

#[tokio::test]
async fn prev_kv_is_filled_live_and_from_history() {
    let m = Member::new();
    let mut c = Client::open(&m);
    let live = c.watch(WatchCreateRequest { prev_kv: true, ..watch_key("a") }).await;
    let plain = c.watch(watch_key("a")).await;
    m.put("a", "1"); // 2: creation, no prev_kv
    m.put("a", "2"); // 3: prev a=1@2
    m.delete("a"); // 4: prev a=2@3
    m.put("a", "3"); // 5: creation again
    let mut h = Client::open(&m);
    let history = h
        .watch(WatchCreateRequest {
            watch_id: 5,
            prev_kv: true,
            start_revision: 2,
            ..watch_key("a")
        })
        .await;

    let mut got = by_watcher(c.drain().await);
    got.extend(by_watcher(h.drain().await));
    assert_eq!(got.len(), 3, "distinct ids across the two streams");
    let prevs = |id: i64| -> Vec<Option<(String, i64, i64)>> {
        got[&id]
            .iter()
            .flat_map(|r| &r.events)
            .map(|e| {
                e.prev_kv.as_ref().map(|p| {
                    (String::from_utf8_lossy(&p.value).into_owned(), p.mod_revision, p.version)
                })
            })
            .collect()
    };
    let expected = vec![None, Some(("1".to_string(), 2, 1)), Some(("2".to_string(), 3, 2)), None];
    assert_eq!(prevs(live), expected);
    assert_eq!(prevs(history), expected);
    assert_eq!(prevs(plain), vec![None; 4]);
    assert_eq!(events_of(&got[&history]), events_of(&got[&live]));
    // A delete's kv is the tombstone: the key and the revision only.
    let del = &got[&live][2].events[0];
    assert_eq!(del.r#type, EventType::Delete as i32);
    assert_eq!(
        del.kv,
        Some(KeyValue { key: b"a".to_vec(), mod_revision: 4, ..Default::default() })
    );
}

#[tokio::test]
async fn watch_ids_client_chosen_auto_and_duplicate() {
    let m = Member::new();
    let mut c = Client::open(&m);
    assert_eq!(c.watch(WatchCreateRequest { watch_id: 1, ..watch_key("a") }).await, 1);
    assert_eq!(c.watch(watch_key("a")).await, 0);
    assert_eq!(c.watch(watch_key("a")).await, 2, "auto ids skip ids in use");

    let duplicate = WatchCreateRequest { watch_id: 1, ..watch_key("a") };
    assert_eq!(c.refused(duplicate.clone()).await, ERR_DUPLICATE_WATCH_ID);
    assert_eq!(ERR_DUPLICATE_WATCH_ID, "mvcc: duplicate watch ID provided on the WatchStream");
    let auto_taken = WatchCreateRequest { watch_id: 2, ..watch_key("a") };
    assert_eq!(c.refused(auto_taken).await, ERR_DUPLICATE_WATCH_ID);
    assert_eq!(c.refused(watch_range("b", "a")).await, "mvcc: watcher range is empty");
    assert_eq!(c.refused(watch_range("b", "b")).await, ERR_EMPTY_WATCHER_RANGE);
    let negative = WatchCreateRequest { start_revision: -1, ..watch_key("a") };
    assert_eq!(c.refused(negative).await, Error::Compacted.to_string());

    assert_eq!(c.watch(WatchCreateRequest { watch_id: 3, ..watch_key("a") }).await, 3);
    assert_eq!(c.watch(watch_key("a")).await, 4, "refusals take no id");
    assert_eq!(m.hub.watcher_count(), 5);

    // A cancelled id can be chosen again.
    c.control.cancel(1).await;
    assert!(c.next().await.canceled);
    assert_eq!(c.watch(duplicate).await, 1);

    // Ids are per stream.
    let mut other = Client::open(&m);
    assert_eq!(other.watch(watch_key("a")).await, 0);
    assert_eq!(other.watch(WatchCreateRequest { watch_id: 1, ..watch_key("a") }).await, 1);

    // Every watcher gets the event once, under its own id.
    m.put("a", "v");
    let got = c.drain().await;
    let ids: Vec<i64> =
        got.iter().map(|r| r.watch_id).collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(got.len(), 5);
    assert_eq!(other.drain().await.iter().map(|r| r.watch_id).collect::<BTreeSet<_>>().len(), 2);
}

#[tokio::test]
async fn cancel_ends_a_watcher() {
    let m = Member::new();
    let mut c = Client::open(&m);
    let id = c.watch(watch_key("a")).await;
    let keep = c.watch(watch_key("b")).await;
    m.put("a", "1");
    assert_eq!(describe(&c.next().await), ["put a=1@2"]);

    c.control.cancel(id).await;
    let canceled = c.next().await;
    assert!(canceled.canceled && !canceled.created && canceled.events.is_empty());
    assert_eq!((canceled.watch_id, header_rev(&canceled)), (id, 2));
    assert_eq!(canceled.cancel_reason, "");
    m.put("a", "2");
    m.put("b", "1");
    let got = c.drain().await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].watch_id, describe(&got[0])), (keep, vec!["put b=1@4".to_string()]));

    // Unknown and already cancelled ids get no answer at all, as in etcd.
    c.control.cancel(id).await;
    c.control.cancel(99).await;
    c.assert_idle().await;
    assert_eq!(m.hub.watcher_count(), 1);
}

#[tokio::test]
async fn cancel_during_catch_up_sends_nothing_after_canceled() {
    let m = Member::new();
    m.put_many("a", 2500);
    let mut c = Client::open(&m);
    let id = c.watch(WatchCreateRequest { start_revision: 2, ..watch_key("a") }).await;
    c.control.cancel(id).await;
    let mut before = Vec::new();
    loop {
        let r = c.next().await;
        if r.canceled {
            assert_eq!(r.watch_id, id);
            break;
        }
        before.push(r);
    }
    assert_contiguous(&before, 2);
    m.put("a", "after");
    c.assert_idle().await;
    assert_eq!(m.hub.watcher_count(), 0);
}

#[tokio::test]
async fn compacted_start_revision_is_canceled_with_compact_revision() {
    let m = Member::new();
    let mut c = Client::open(&m);
    let synced = c.watch(watch_key("a")).await;
    for i in 0..10 {
        m.put("a", &i.to_string()); // 2..=11
    }
    let early = c.drain().await;
    assert_eq!(early.iter().flat_map(revs).collect::<Vec<_>>(), (2..=11).collect::<Vec<_>>());
    m.compact(6);
    let old =
        c.watch(WatchCreateRequest { watch_id: 7, start_revision: 3, ..watch_key("a") }).await;
    let compacted = c.next().await;
    assert_eq!(compacted.watch_id, old);
    assert!(compacted.canceled && !compacted.created && compacted.events.is_empty());
    assert_eq!(compacted.compact_revision, 6);
    assert_eq!(header_rev(&compacted), 0, "etcd sends the compaction without a revision");

    // Starting exactly at the compacted revision is allowed: its newest change survives.
    let at = c.watch(WatchCreateRequest { start_revision: 6, ..watch_key("a") }).await;
    let after = c.watch(WatchCreateRequest { start_revision: 10, ..watch_key("a") }).await;
    let live = m.put("a", "live");
    let got = by_watcher(c.drain().await);
    let got_revs = |id: i64| -> Vec<i64> { got[&id].iter().flat_map(revs).collect() };
    assert_eq!(got_revs(at), (6..=live).collect::<Vec<_>>());
    assert_eq!(got_revs(after), (10..=live).collect::<Vec<_>>());
    assert_eq!(got_revs(synced), [live], "synced watchers are unaffected");
    assert!(!got.contains_key(&old), "a compacted watcher gets nothing more");

    // Its id stays taken until the client cancels it, which is answered, as in etcd.
    let reuse = WatchCreateRequest { watch_id: old, ..watch_key("a") };
    assert_eq!(c.refused(reuse.clone()).await, ERR_DUPLICATE_WATCH_ID);
    c.control.cancel(old).await;
    let canceled = c.next().await;
    assert!(canceled.canceled && canceled.watch_id == old && canceled.compact_revision == 0);
    assert_eq!(c.watch(reuse).await, old);
}

/// A stream whose client does not read while more than `STREAM_QUEUE_CAPACITY` revisions are
/// published gets every event exactly once, in order, once it reads; a stream that keeps up
/// on the same hub still gets one live response per revision.
#[tokio::test]
async fn slow_stream_catches_up_exactly_once_and_fast_stream_is_unaffected() {
    let m = Member::new();
    let mut slow = Client::open(&m);
    let mut fast = Client::open(&m);
    let slow_id = slow.watch(watch_key("k")).await;
    let fast_id = fast.watch(watch_key("k")).await;
    let start = m.hub.revision() + 1;
    let n = 3 * STREAM_QUEUE_CAPACITY + 17;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < n {
            got.push(fast.next().await);
        }
        (fast, got)
    });
    for i in 0..n {
        m.put("k", &i.to_string());
        tokio::task::yield_now().await; // the fast client reads everything queued
    }
    let last = m.hub.revision();
    let (mut fast, fast_got) = reader.await.unwrap();
    assert!(fast_got.iter().all(|r| r.watch_id == fast_id && r.events.len() == 1));
    assert_eq!(assert_contiguous(&fast_got, start), last + 1);
    assert!(fast_got.iter().all(|r| header_rev(r) == revs(r)[0]), "fast stream went unsynced");

    // Ask for progress while the queue is still full (the request waits for room, as etcd's
    // control stream does): the answer must not overtake the events being replayed.
    let read_all = async {
        let mut got = Vec::new();
        loop {
            let r = receive(&mut slow.rx).await.response;
            if is_progress(&r) {
                return (got, r);
            }
            assert_eq!(r.watch_id, slow_id);
            got.push(r);
        }
    };
    let ((), (slow_got, progress)) = tokio::join!(slow.control.request_progress(), read_all);
    assert_eq!(header_rev(&progress), last);
    assert_eq!(assert_contiguous(&slow_got, start), last + 1);
    assert!(slow_got.len() < n, "the slow stream never fell back to history");
    slow.assert_idle().await;

    // Both are live again.
    m.put("k", "again");
    assert_eq!(revs(&slow.next().await), [last + 1]);
    assert_eq!(revs(&fast.next().await), [last + 1]);
    slow.assert_idle().await;
    fast.assert_idle().await;
}

#[tokio::test]
async fn slow_watcher_whose_missed_history_is_compacted_is_canceled() {
    let m = Member::new();
    let mut c = Client::open(&m);
    let id = c.watch(watch_key("k")).await;
    let start = m.hub.revision() + 1;
    for i in 0..2 * STREAM_QUEUE_CAPACITY {
        m.put("k", &i.to_string()); // no await: the client cannot read, nor the syncer run
    }
    let last = m.hub.revision();
    m.compact(last);
    let mut events = Vec::new();
    let end = loop {
        let r = c.next().await;
        assert_eq!(r.watch_id, id);
        if r.canceled {
            break r;
        }
        events.push(r);
    };
    assert_eq!(end.compact_revision, last);
    assert!(end.events.is_empty());
    let next = assert_contiguous(&events, start);
    assert!(next < last, "the watcher should have missed revisions");
    m.put("k", "after");
    c.assert_idle().await;
}

#[tokio::test]
async fn progress_request_answers_with_the_published_revision() {
    let m = Member::new();
    let mut c = Client::open(&m);
    let id = c.watch(watch_key("a")).await;
    m.put("b", "x");
    m.put("b", "y");
    c.control.request_progress().await;
    let progress = c.next().await;
    assert!(is_progress(&progress), "{progress:?}");
    assert_eq!(header_rev(&progress), 3);

    // Committed but not yet published: progress must not claim that revision.
    let events = m.commit(|w| txn_put(w, &[("a", "1")]));
    assert_eq!(m.mvcc.current_revision(), 4);
    c.control.request_progress().await;
    assert_eq!(header_rev(&c.next().await), 3);
    m.hub.publish(&events);
    c.control.request_progress().await;
    let event = c.next().await;
    assert_eq!((event.watch_id, describe(&event)), (id, vec!["put a=1@4".to_string()]));
    assert_eq!(header_rev(&c.next().await), 4);
}

/// A progress answer never claims a revision whose events the stream has not been sent: it
/// waits for catching-up watchers. Catch-up responses hold at most
/// `MAX_REVISIONS_PER_RESPONSE` revisions each.
#[tokio::test]
async fn progress_request_waits_for_catch_up() {
    let m = Member::new();
    let last = m.put_many("a", 2500);
    let mut c = Client::open(&m);
    c.watch(WatchCreateRequest { start_revision: 2, ..watch_key("a") }).await;
    let got = c.drain().await; // asserts the answer is at the published revision
    assert_eq!(assert_contiguous(&got, 2), last + 1);
    assert_eq!(got.iter().map(|r| r.events.len()).collect::<Vec<_>>(), [1000, 1000, 500]);
    assert!(got.iter().all(|r| header_rev(r) == last));
}

#[tokio::test]
async fn progress_notify_reports_idle_watchers() {
    const EVERY: Duration = Duration::from_millis(200);
    let m = Member::new();
    m.hub.set_progress_interval(EVERY);
    let mut c = Client::open(&m);
    let opened = Instant::now();
    let notify = c.watch(WatchCreateRequest { progress_notify: true, ..watch_key("a") }).await;
    let quiet = c.watch(watch_key("a")).await;
    m.put("b", "x"); // not watched: the watcher stays idle

    let first = c.next().await;
    let waited = opened.elapsed();
    assert_eq!(first.watch_id, notify, "only progress_notify watchers are told: {first:?}");
    assert!(first.events.is_empty() && !first.canceled && !first.created);
    assert_eq!(header_rev(&first), m.hub.revision());
    assert!(waited >= EVERY && waited < EVERY * 3, "first progress after {waited:?}");

    // A tick right after an event is skipped (etcd's per-watcher progress flag).
    let put = m.put("a", "1");
    let event_at = Instant::now();
    let mut got = Vec::new();
    let second = loop {
        let r = c.next().await;
        if r.events.is_empty() {
            break r;
        }
        got.push(r.watch_id);
    };
    let gap = event_at.elapsed();
    got.sort();
    assert_eq!(got, [notify.min(quiet), notify.max(quiet)]);
    assert_eq!((second.watch_id, header_rev(&second)), (notify, put));
    assert!(gap >= EVERY * 3 / 2, "progress {gap:?} after an event: the next tick was not skipped");
}

#[tokio::test]
async fn a_thousand_watchers_on_one_key_each_get_the_event_once() {
    let m = Member::new();
    let mut clients: Vec<Client> = (0..10).map(|_| Client::open(&m)).collect();
    for c in &mut clients {
        for _ in 0..100 {
            c.control.create(watch_key("hot")).await;
        }
        for _ in 0..100 {
            assert!(c.next().await.created);
        }
    }
    assert_eq!(m.hub.watcher_count(), 1000);
    let rev = m.put("hot", "v");
    m.put("cold", "v");
    for c in &mut clients {
        let got = c.drain().await;
        assert_eq!(got.len(), 100);
        assert!(got.iter().all(|r| revs(r) == [rev]));
        let ids: BTreeSet<i64> = got.iter().map(|r| r.watch_id).collect();
        assert_eq!(ids, (0..100).collect());
    }
    clients.truncate(3);
    assert_eq!(m.hub.watcher_count(), 300, "dropping a receiver drops its watchers");
}

#[tokio::test]
async fn large_responses_are_split_for_fragmenting_watchers() {
    let m = Member::new();
    m.hub.set_max_request_bytes(1024);
    let limit = m.hub.fragment_limit();
    assert_eq!(limit, 1024 + GRPC_OVERHEAD_BYTES);
    let mut c = Client::open(&m);
    let fragmenting = c.watch(WatchCreateRequest { fragment: true, ..watch_range("k", "l") }).await;
    let whole = c.watch(watch_range("k", "l")).await;
    let value = "x".repeat(200 * 1024);
    let keys: Vec<String> = (0..4).map(|i| format!("k{i}")).collect();
    let kvs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), value.as_str())).collect();
    let rev = m.apply(|w| txn_put(w, &kvs));
    let mut deliveries = vec![c.delivery().await, c.delivery().await];
    let history = c
        .watch(WatchCreateRequest { fragment: true, start_revision: rev, ..watch_range("k", "l") })
        .await;
    deliveries.push(c.delivery().await);

    let mut seen = BTreeSet::new();
    for d in deliveries {
        let id = d.response.watch_id;
        seen.insert(id);
        assert_eq!(d.response.events.len(), 4);
        assert_eq!(d.fragment, id != whole, "watcher {id} fragment flag");
        // What the API layer sends, as `api/watch.rs` does.
        let sent =
            if d.fragment { fragment(d.response.clone(), limit) } else { vec![d.response.clone()] };
        if id == whole {
            assert_eq!(sent.len(), 1);
            assert!(!sent[0].fragment);
            continue;
        }
        assert_eq!(sent.iter().map(|p| p.events.len()).collect::<Vec<_>>(), [2, 2]);
        assert_eq!(sent.iter().map(|p| p.fragment).collect::<Vec<_>>(), [true, false]);
        assert!(sent.iter().all(|p| p.watch_id == id && header_rev(p) == rev));
        let joined: Vec<Event> = sent.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, d.response.events);
    }
    assert_eq!(seen, BTreeSet::from([fragmenting, whole, history]));
    c.assert_idle().await;
}

#[tokio::test]
async fn one_response_per_revision_of_a_batch() {
    let m = Member::new();
    let mut c = Client::open(&m);
    c.watch(watch_range("", "\0")).await;
    m.apply(|w| {
        txn_put(w, &[("a", "1"), ("b", "1")]);
        txn_put(w, &[("c", "1")]);
        txn_put(w, &[("a", "2"), ("c", "2"), ("b", "2")]);
    });
    let got = c.drain().await;
    assert_eq!(
        got.iter().map(describe).collect::<Vec<_>>(),
        [
            vec!["put a=1@2", "put b=1@2"],
            vec!["put c=1@3"],
            vec!["put a=2@4", "put c=2@4", "put b=2@4"]
        ]
    );
    // A batch published twice (or out of order) is not delivered again.
    let stale = m.mvcc.events_between(&KeyRange::new(b"a", b"\0"), 2, 4).unwrap();
    m.hub.publish(&stale);
    c.assert_idle().await;
}

#[tokio::test]
async fn shutdown_and_dropped_receivers_close_streams() {
    let m = Member::new();
    let mut c = Client::open(&m);
    c.watch(watch_key("a")).await;
    let dropped = Client::open(&m);
    dropped.control.create(watch_key("a")).await;
    assert_eq!(m.hub.watcher_count(), 2);
    drop(dropped);
    assert_eq!(m.hub.watcher_count(), 1);
    m.put("a", "1"); // publishing to a closed stream's leftovers is harmless
    assert_eq!(revs(&c.next().await), [2]);

    m.hub.shutdown();
    assert!(matches!(c.rx.next().await, Some(Err(Error::Stopped))));
    assert!(c.rx.next().await.is_none());
    assert_eq!(m.hub.watcher_count(), 0);
    let mut late = Client::open(&m);
    assert!(matches!(late.rx.next().await, Some(Err(Error::Stopped))));
}

#[tokio::test]
async fn a_stream_whose_syncer_died_ends_with_an_error_instead_of_stalling() {
    let m = Member::new();
    m.put("a", "old");
    let mut c = Client::open(&m);
    // A watcher from history needs the syncer to catch up; with the syncer gone (as after a
    // panic) it would wait forever.
    c.rx.syncer.abort();
    c.control.create(WatchCreateRequest { start_revision: 1, ..watch_key("a") }).await;
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match c.rx.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends rather than stalls");
    assert!(
        matches!(&ended, Some(Err(Error::Internal(m))) if m.contains("watch stream syncer")),
        "{ended:?}"
    );
    assert!(c.rx.next().await.is_none(), "nothing after the error");
}
