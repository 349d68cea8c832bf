//! `V2Store`: the v2 tree, its index and its last 1000 events, persisted in `Cf::V2` with
//! the raft batch that applied them (so raft snapshots carry them too), and the watchers of
//! `wait=true` requests on this member.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use rocksdb::WriteBatch;
use serde::Serialize;
use tokio::sync::mpsc;

use super::command::{V2Command, V2Outcome};
use super::error::{self as code, V2Error};
use super::event::{now_ns, Event};
use super::path;
use super::tree::{Applied, Change, NodeRecord, Tree};
use crate::error::{Error, Result};
use crate::storage::schema::v2_keys;
use crate::storage::{Cf, Storage};

/// Events kept for `waitIndex` (etcd's event history capacity).
pub const HISTORY: usize = 1000;
/// Events a watcher may have queued before it is dropped (etcd's watcher channel size).
const WATCHER_QUEUE: usize = 100;
/// The cluster version etcd 3.4 records in its v2 store.
const STORE_VERSION: &str = "3.4.0";

/// The v2 store of a member.
pub struct V2Store {
    storage: Storage,
    state: Mutex<State>,
}

struct State {
    tree: Tree,
    history: VecDeque<Event>,
    /// History entries added and dropped since the last flush.
    added: Vec<Event>,
    dropped: Vec<u64>,
    version_set: bool,
    watchers: HashMap<String, Vec<Watcher>>,
    stats: Stats,
}

struct Watcher {
    recursive: bool,
    stream: bool,
    since: u64,
    tx: mpsc::Sender<Event>,
}

/// A `wait=true` request: an event found in the history, or a queue of future ones.
pub enum Watch {
    /// The event the history already holds at or after `waitIndex`.
    Found(Box<Event>),
    /// Events to come (one unless streaming); the channel closes if the watcher falls
    /// behind or the store is replaced by a snapshot.
    Waiting(mpsc::Receiver<Event>),
}

/// etcd's v2 store statistics (`/v2/stats/store`), counted on this member.
#[derive(Debug, Clone, Default, Serialize)]
#[allow(missing_docs)]
pub struct Stats {
    #[serde(rename = "getsSuccess")]
    pub gets_success: u64,
    #[serde(rename = "getsFail")]
    pub gets_fail: u64,
    #[serde(rename = "setsSuccess")]
    pub sets_success: u64,
    #[serde(rename = "setsFail")]
    pub sets_fail: u64,
    #[serde(rename = "deleteSuccess")]
    pub delete_success: u64,
    #[serde(rename = "deleteFail")]
    pub delete_fail: u64,
    #[serde(rename = "updateSuccess")]
    pub update_success: u64,
    #[serde(rename = "updateFail")]
    pub update_fail: u64,
    #[serde(rename = "createSuccess")]
    pub create_success: u64,
    #[serde(rename = "createFail")]
    pub create_fail: u64,
    #[serde(rename = "compareAndSwapSuccess")]
    pub cas_success: u64,
    #[serde(rename = "compareAndSwapFail")]
    pub cas_fail: u64,
    #[serde(rename = "compareAndDeleteSuccess")]
    pub cad_success: u64,
    #[serde(rename = "compareAndDeleteFail")]
    pub cad_fail: u64,
    #[serde(rename = "expireCount")]
    pub expire_count: u64,
    pub watchers: u64,
}

impl Stats {
    fn count(&mut self, kind: &str, ok: bool) {
        let (s, f) = match kind {
            "get" => (&mut self.gets_success, &mut self.gets_fail),
            "set" => (&mut self.sets_success, &mut self.sets_fail),
            "delete" => (&mut self.delete_success, &mut self.delete_fail),
            "update" => (&mut self.update_success, &mut self.update_fail),
            "create" => (&mut self.create_success, &mut self.create_fail),
            "cas" => (&mut self.cas_success, &mut self.cas_fail),
            _ => (&mut self.cad_success, &mut self.cad_fail),
        };
        *(if ok { s } else { f }) += 1;
        // etcd's v2 store counts every attempt, failed or not, under its action names.
        let action = match kind {
            "get" => return,
            "cas" => "compareAndSwap",
            "set" | "delete" | "update" | "create" => kind,
            _ => "compareAndDelete",
        };
        crate::metrics::V2_WRITES.with_label_values(&[action]).inc();
    }
}

impl V2Store {
    /// Loads the store from `Cf::V2`.
    pub fn open(storage: Storage) -> Result<V2Store> {
        let state = load(&storage)?;
        Ok(V2Store { storage, state: Mutex::new(state) })
    }

    /// Re-reads the store after a raft snapshot install; open watches end (their channels
    /// close), as etcd's watchers do when its v2 store is recovered from a snapshot.
    pub fn reload(&self) -> Result<()> {
        let state = load(&self.storage)?;
        *self.lock() = state;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current index.
    pub fn index(&self) -> u64 {
        self.lock().tree.index()
    }

    /// The earliest expiry (unix ns) of any node, for the leader's SYNC.
    pub fn next_expiry(&self) -> Option<i64> {
        self.lock().tree.next_expiry()
    }

    /// The statistics.
    pub fn stats(&self) -> Stats {
        let st = self.lock();
        let mut stats = st.stats.clone();
        stats.watchers = st.watchers.values().map(|w| w.len() as u64).sum();
        stats
    }

    /// A local (serializable) GET, and the index it read at.
    pub fn get(&self, p: &str, recursive: bool) -> std::result::Result<(Event, u64), V2Error> {
        let mut st = self.lock();
        let got = st.tree.get(p, recursive, now_ns());
        st.stats.count("get", got.is_ok());
        count_read(recursive);
        got.map(|e| (e, st.tree.index()))
    }

    /// Every key (not directory) under the keys prefix with its value and expiry, in path
    /// order: what a v2 → v3 migration converts.
    pub fn keys(&self) -> Vec<(String, String, Option<i64>)> {
        self.lock().tree.keys()
    }

    /// etcd's `Watch`: the first matching event at or after `since` (0: the next index)
    /// from the history, else a watcher for the next one. Also the store index when the
    /// watch began (`X-Etcd-Index`).
    pub fn watch(
        &self,
        p: &str,
        recursive: bool,
        stream: bool,
        since: u64,
    ) -> std::result::Result<(Watch, u64), V2Error> {
        crate::metrics::V2_WATCH_REQUESTS.inc();
        let mut st = self.lock();
        let key = path::clean(p);
        let index = st.tree.index();
        let since = if since == 0 { index + 1 } else { since };
        if let Some(found) = st.scan(&key, recursive, since)? {
            return Ok((Watch::Found(Box::new(found)), index));
        }
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        st.watchers.entry(key).or_default().push(Watcher { recursive, stream, since, tx });
        Ok((Watch::Waiting(rx), index))
    }

    /// Applies a replicated command into `batch`; `now` only shows TTLs in the answer.
    pub fn apply(&self, batch: &mut WriteBatch, cmd: V2Command) -> Result<V2Outcome> {
        let now = now_ns();
        let mut st = self.lock();
        let outcome = st.run(cmd, now);
        st.flush(&self.storage, batch)?;
        Ok(outcome)
    }

    /// A member joined (raft attributes recorded under `/0/members`, as etcd does; the
    /// index moves as in etcd, so v2 indexes match a real cluster's).
    pub fn member_added(
        &self,
        batch: &mut WriteBatch,
        id: u64,
        peer_urls: &[String],
    ) -> Result<()> {
        let value = serde_json::json!({ "peerURLs": peer_urls }).to_string();
        let path = format!("/0/members/{id:x}/raftAttributes");
        let mut st = self.lock();
        let now = now_ns();
        let change = match st.tree.create(&path, false, &value, false, None, now) {
            Ok(c) => Ok(c),
            Err(_) => st.tree.set(&path, false, &value, false, None, now),
        };
        if let Ok(change) = change {
            st.stats.count("create", true);
            st.record(change);
        }
        st.flush(&self.storage, batch)
    }

    /// A member published its name and client URLs; the first publish also records the
    /// cluster version, as etcd's leader does once.
    pub fn member_published(
        &self,
        batch: &mut WriteBatch,
        id: u64,
        name: &str,
        client_urls: &[String],
    ) -> Result<()> {
        let value = serde_json::json!({ "name": name, "clientURLs": client_urls }).to_string();
        self.internal_set(batch, &format!("/0/members/{id:x}/attributes"), &value)?;
        if !self.lock().version_set {
            self.lock().version_set = true;
            self.internal_set(batch, "/0/version", STORE_VERSION)?;
        }
        Ok(())
    }

    /// A member was removed: its entry goes, and it is listed as removed (two changes).
    pub fn member_removed(&self, batch: &mut WriteBatch, id: u64) -> Result<()> {
        let mut st = self.lock();
        let now = now_ns();
        let path = format!("/0/members/{id:x}");
        if let Ok(change) = st.tree.delete(&path, true, true, now) {
            st.record(change);
        }
        if let Ok(change) = st.tree.create(
            &format!("/0/removed_members/{id:x}"),
            false,
            "removed",
            false,
            None,
            now,
        ) {
            st.record(change);
        }
        st.flush(&self.storage, batch)
    }

    fn internal_set(&self, batch: &mut WriteBatch, p: &str, value: &str) -> Result<()> {
        let mut st = self.lock();
        if let Ok(change) = st.tree.set(p, false, value, false, None, now_ns()) {
            st.stats.count("set", true);
            st.record(change);
        }
        st.flush(&self.storage, batch)
    }
}

/// Counts a v2 read under etcd's action name.
fn count_read(recursive: bool) {
    let action = if recursive { "getRecursive" } else { "get" };
    crate::metrics::V2_READS.with_label_values(&[action]).inc();
}

impl State {
    /// etcd's `applierV2store`: which store operation a command is.
    fn run(&mut self, cmd: V2Command, now: i64) -> V2Outcome {
        let (kind, result) = match self.tree.apply(cmd, now) {
            Applied::Write(kind, result) => (kind, result),
            Applied::Expired(changes) => {
                for change in changes {
                    self.stats.expire_count += 1;
                    crate::metrics::V2_EXPIRES.inc();
                    self.record(change);
                }
                return V2Outcome::Nothing;
            }
            Applied::Untouched(V2Command::QGet { path, recursive, sorted: _ }) => {
                let got = self.tree.get(&path, recursive, now);
                self.stats.count("get", got.is_ok());
                count_read(recursive);
                return match got {
                    Ok(event) => {
                        V2Outcome::Event { event: Box::new(event), etcd_index: self.tree.index() }
                    }
                    Err(e) => V2Outcome::Error(e),
                };
            }
            Applied::Untouched(_) => return V2Outcome::Nothing,
        };
        self.stats.count(kind, result.is_ok());
        match result {
            Ok(change) => {
                let event = change.event.clone();
                self.record(change);
                V2Outcome::Event { event: Box::new(event), etcd_index: self.tree.index() }
            }
            Err(e) => V2Outcome::Error(e),
        }
    }

    /// Adds a change's event to the history and tells the watchers (a refresh only goes to
    /// the history, as in etcd).
    fn record(&mut self, change: Change) {
        let Change { event, removed } = change;
        self.history.push_back(event.clone());
        self.added.push(event.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.dropped.push(old.index());
            }
        }
        if event.refresh {
            return;
        }
        for p in &removed {
            self.notify_at(&event, p, true);
        }
        let key = event.key().to_string();
        let mut cur = "/".to_string();
        self.notify_at(&event, &cur, false);
        for name in key.split('/').filter(|s| !s.is_empty()) {
            cur = path::join(&cur, name);
            self.notify_at(&event, &cur, false);
        }
    }

    /// etcd's `notifyWatchers`: watchers of `at` that this event concerns.
    fn notify_at(&mut self, event: &Event, at: &str, deleted: bool) {
        let Some(list) = self.watchers.get_mut(at) else {
            return;
        };
        let key = event.key();
        let original = key == at;
        let index = event.index();
        list.retain(|w| {
            if w.tx.is_closed() {
                return false;
            }
            let visible = original || !path::is_hidden(at, key);
            if visible && (w.recursive || original || deleted) && index >= w.since {
                // A full queue drops the watcher (its channel closes), as etcd does.
                return w.tx.try_send(event.clone()).is_ok() && w.stream;
            }
            true
        });
        if list.is_empty() {
            self.watchers.remove(at);
        }
    }

    /// etcd's `EventHistory.scan`: the first event at or after `index` about `key`.
    fn scan(
        &self,
        key: &str,
        recursive: bool,
        index: u64,
    ) -> std::result::Result<Option<Event>, V2Error> {
        let start = self.history.front().map(|e| e.index()).unwrap_or(0);
        let last = self.history.back().map(|e| e.index()).unwrap_or(0);
        if index < start {
            return Err(V2Error::new(
                code::EVENT_INDEX_CLEARED,
                format!("the requested history has been cleared [{start}/{index}]"),
                self.tree.index(),
            ));
        }
        if index > last {
            return Ok(None);
        }
        let prefix = if key.ends_with('/') { key.to_string() } else { format!("{key}/") };
        for e in self.history.iter().skip((index - start) as usize) {
            if e.refresh {
                continue;
            }
            let mut ok = e.key() == key || (recursive && e.key().starts_with(&prefix));
            if let (true, Some(prev)) = (e.action == "delete" || e.action == "expire", &e.prev_node)
            {
                ok = ok || (prev.dir && key.starts_with(&prev.key));
            }
            if ok {
                return Ok(Some(e.clone()));
            }
        }
        Ok(None)
    }

    /// Writes what changed since the last flush into `batch`.
    fn flush(&mut self, storage: &Storage, batch: &mut WriteBatch) -> Result<()> {
        let cf = storage.cf(Cf::V2);
        for (p, rec) in self.tree.take_dirty() {
            let key = [v2_keys::NODE_PREFIX, p.as_bytes()].concat();
            match rec {
                Some(rec) => batch.put_cf(cf, key, encode(&rec)?),
                None => batch.delete_cf(cf, key),
            }
        }
        for e in self.added.drain(..) {
            batch.put_cf(cf, event_key(e.index()), encode(&e)?);
        }
        for i in self.dropped.drain(..) {
            batch.delete_cf(cf, event_key(i));
        }
        batch.put_cf(cf, v2_keys::INDEX, self.tree.index().to_be_bytes());
        if self.version_set {
            batch.put_cf(cf, v2_keys::VERSION_SET, [1u8]);
        }
        Ok(())
    }
}

fn event_key(index: u64) -> Vec<u8> {
    [v2_keys::EVENT_PREFIX, &index.to_be_bytes()[..]].concat()
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal("encode v2 record", e))
}

fn load(storage: &Storage) -> Result<State> {
    let db = storage.db();
    let cf = storage.cf(Cf::V2);
    let mut nodes = BTreeMap::new();
    let mut history = VecDeque::new();
    let mut index = 0;
    let mut version_set = false;
    for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item?;
        if let Some(p) = k.strip_prefix(v2_keys::NODE_PREFIX) {
            let p = String::from_utf8_lossy(p).into_owned();
            let rec: NodeRecord =
                serde_json::from_slice(&v).map_err(|e| Error::internal("decode v2 node", e))?;
            nodes.insert(p, rec);
        } else if k.starts_with(v2_keys::EVENT_PREFIX) {
            let e: Event =
                serde_json::from_slice(&v).map_err(|e| Error::internal("decode v2 event", e))?;
            history.push_back(e);
        } else if &*k == v2_keys::INDEX {
            index = v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
        } else if &*k == v2_keys::VERSION_SET {
            version_set = true;
        }
    }
    Ok(State {
        tree: Tree::new(index, nodes),
        history,
        added: Vec::new(),
        dropped: Vec::new(),
        version_set,
        watchers: HashMap::new(),
        stats: Stats::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Storage, V2Store) {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let storage = Storage::open(dir.path()).expect("storage");
        let store = V2Store::open(storage.clone()).expect("v2 store");
        (dir, storage, store)
    }

    fn apply(storage: &Storage, store: &V2Store, cmd: V2Command) -> V2Outcome {
        let mut batch = WriteBatch::default();
        let out = store.apply(&mut batch, cmd).expect("apply");
        storage.db().write(batch).expect("write");
        out
    }

    fn set(path: &str, value: &str) -> V2Command {
        V2Command::Put {
            path: path.into(),
            value: value.into(),
            dir: false,
            prev_value: String::new(),
            prev_index: 0,
            prev_exist: None,
            refresh: false,
            expiration: 0,
        }
    }

    #[test]
    fn state_and_history_survive_a_reopen_and_the_window_is_1000_events() {
        let (_dir, storage, store) = store();
        for i in 0..1005 {
            apply(&storage, &store, set("/1/k", &i.to_string()));
        }
        let store = V2Store::open(storage.clone()).expect("reopen");
        assert_eq!(store.index(), 1005);
        let (e, _) = store.get("/1/k", false).expect("get");
        assert_eq!(e.node.and_then(|n| n.value).as_deref(), Some("1004"));
        let err = store.watch("/1/k", false, false, 5).err().expect("cleared");
        assert_eq!(
            (err.code, err.cause.as_str()),
            (401, "the requested history has been cleared [6/5]")
        );
        match store.watch("/1/k", false, false, 6).expect("in window").0 {
            Watch::Found(e) => assert_eq!(e.index(), 6),
            Watch::Waiting(_) => panic!("event 6 is in the history"),
        }
    }

    #[test]
    fn watchers_hear_changes_below_them_only_when_recursive() {
        let (_dir, storage, store) = store();
        let Ok((Watch::Waiting(mut plain), 0)) = store.watch("/1/d", false, false, 0) else {
            panic!("a waiting watch")
        };
        let Ok((Watch::Waiting(mut rec), 0)) = store.watch("/1/d", true, true, 0) else {
            panic!("a waiting watch")
        };
        apply(&storage, &store, set("/1/d/x", "1"));
        assert_eq!(rec.try_recv().expect("recursive hears it").key(), "/1/d/x");
        assert!(plain.try_recv().is_err());
        apply(
            &storage,
            &store,
            V2Command::Delete {
                path: "/1/d".into(),
                dir: true,
                recursive: true,
                prev_value: String::new(),
                prev_index: 0,
            },
        );
        assert_eq!(plain.try_recv().expect("the delete").action, "delete");
        assert_eq!(rec.try_recv().expect("streaming").action, "delete");
    }
}
