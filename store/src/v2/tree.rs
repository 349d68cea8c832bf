//! The v2 node tree and etcd 3.4's v2store operations on it (`store.go`, `node.go`): the
//! same checks in the same order, the same errors with the same indexes, the same quirks
//! (a create that fails on an existing key still leaves the parent directories it made).
//!
//! Pure and in memory: the caller passes the time used to show TTLs; expiry happens only
//! when a replicated SYNC says so (`delete_expired`), so members never disagree.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::command::V2Command;
use super::error::{self as code, V2Error};
use super::event::{Event, NodeExtern};
use super::path;

/// Expiry times before this are "never" (etcd's `minExpireTime`, 2000-01-01 UTC).
const MIN_EXPIRE_NS: i64 = 946_684_800_000_000_000;

/// One node as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// A directory (else a key with a value).
    pub dir: bool,
    /// A key's value.
    #[serde(default)]
    pub value: String,
    /// The index it was created at.
    pub created: u64,
    /// The index of its last change.
    pub modified: u64,
    /// When it expires (unix ns); `None` is permanent.
    #[serde(default)]
    pub expire: Option<i64>,
}

impl NodeRecord {
    fn dir(index: u64, expire: Option<i64>) -> NodeRecord {
        NodeRecord { dir: true, value: String::new(), created: index, modified: index, expire }
    }
}

/// A change made by an operation: its event, and the paths it removed (whose watchers are
/// told even when they watch only that path).
#[derive(Debug, Clone)]
pub struct Change {
    /// The event (paths still carry the store prefix).
    pub event: Event,
    /// Nodes removed, children before their directory.
    pub removed: Vec<String>,
}

impl From<Event> for Change {
    fn from(event: Event) -> Change {
        Change { event, removed: Vec::new() }
    }
}

/// What one replicated command did to the tree.
// Returned once per command and taken apart at once: boxing the common case buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Applied {
    /// A write: its kind (`set`, `create`, `update`, `cas`, `delete`, `cad`: etcd's
    /// statistics' names) and its change or error.
    Write(&'static str, Result<Change, V2Error>),
    /// A `SYNC`: the nodes that expired.
    Expired(Vec<Change>),
    /// A command that does not change the tree (a quorum read, the migration to v3), handed
    /// back to the caller.
    Untouched(V2Command),
}

/// The tree: every node by its full path, the TTL order, the current index.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: BTreeMap<String, NodeRecord>,
    ttl: BTreeSet<(i64, String)>,
    index: u64,
    dirty: BTreeSet<String>,
}

/// Directories that exist from the start and can never change (etcd's `readonlySet`).
const READ_ONLY: [&str; 3] = ["/", "/0", "/1"];

impl Default for Tree {
    fn default() -> Tree {
        Tree::new(0, BTreeMap::new())
    }
}

impl Tree {
    /// A tree of `nodes` (as loaded) at `index`; the fixed root directories are added.
    pub fn new(index: u64, mut nodes: BTreeMap<String, NodeRecord>) -> Tree {
        for p in READ_ONLY {
            nodes.entry(p.to_string()).or_insert_with(|| NodeRecord::dir(0, None));
        }
        let ttl = nodes.iter().filter_map(|(p, n)| n.expire.map(|e| (e, p.clone()))).collect();
        Tree { nodes, ttl, index, dirty: BTreeSet::new() }
    }

    /// Applies a replicated command as etcd's `applierV2store` does: which store operation
    /// a PUT, POST or DELETE is follows from its conditions. One place for this, so a
    /// member's store and an offline replay of etcd's own log agree.
    pub fn apply(&mut self, cmd: V2Command, now: i64) -> Applied {
        let exp = |e: i64| (e != 0).then_some(e);
        match cmd {
            V2Command::Post { path, value, dir, expiration } => Applied::Write(
                "create",
                self.create(&path, dir, &value, true, exp(expiration), now),
            ),
            V2Command::Put {
                path,
                value,
                dir,
                prev_value,
                prev_index,
                prev_exist,
                refresh,
                expiration,
            } => {
                let expire = exp(expiration);
                let compare = prev_index > 0 || !prev_value.is_empty();
                match prev_exist {
                    Some(true) if !compare => {
                        Applied::Write("update", self.update(&path, &value, refresh, expire, now))
                    }
                    Some(false) => Applied::Write(
                        "create",
                        self.create(&path, dir, &value, false, expire, now),
                    ),
                    Some(true) | None if compare => Applied::Write(
                        "cas",
                        self.compare_and_swap(
                            &path,
                            &prev_value,
                            prev_index,
                            &value,
                            refresh,
                            expire,
                            now,
                        ),
                    ),
                    _ => Applied::Write("set", self.set(&path, dir, &value, refresh, expire, now)),
                }
            }
            V2Command::Delete { path, dir, recursive, prev_value, prev_index } => {
                if prev_index > 0 || !prev_value.is_empty() {
                    Applied::Write(
                        "cad",
                        self.compare_and_delete(&path, &prev_value, prev_index, now),
                    )
                } else {
                    Applied::Write("delete", self.delete(&path, dir, recursive, now))
                }
            }
            V2Command::Sync { time } => Applied::Expired(self.delete_expired(time, now)),
            other @ (V2Command::QGet { .. } | V2Command::MigrateToV3 { .. }) => {
                Applied::Untouched(other)
            }
        }
    }

    /// The current index (etcd's `CurrentIndex`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Every node but the fixed roots, by path (what is persisted).
    pub fn nodes(&self) -> impl Iterator<Item = (&String, &NodeRecord)> {
        self.nodes.iter().filter(|(p, _)| !READ_ONLY.contains(&p.as_str()))
    }

    /// Every key (not directory) under the keys prefix with its value and expiry, in path
    /// order, paths without the prefix: what a v2 → v3 migration converts.
    pub fn keys(&self) -> Vec<(String, String, Option<i64>)> {
        let prefix = format!("{}/", super::KEYS_PREFIX);
        self.nodes()
            .filter(|(p, n)| !n.dir && p.starts_with(&prefix))
            .map(|(p, n)| (p[super::KEYS_PREFIX.len()..].to_string(), n.value.clone(), n.expire))
            .collect()
    }

    /// The paths changed since the last call, with their record (`None`: removed).
    pub fn take_dirty(&mut self) -> Vec<(String, Option<NodeRecord>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|p| {
                let rec = self.nodes.get(&p).cloned();
                (p, rec)
            })
            .collect()
    }

    /// The earliest expiry of any node, if one has a TTL.
    pub fn next_expiry(&self) -> Option<i64> {
        self.ttl.first().map(|(t, _)| *t)
    }

    fn insert(&mut self, p: &str, rec: NodeRecord) {
        if let Some(old) = self.nodes.get(p) {
            if let Some(e) = old.expire {
                self.ttl.remove(&(e, p.to_string()));
            }
        }
        if let Some(e) = rec.expire {
            self.ttl.insert((e, p.to_string()));
        }
        self.nodes.insert(p.to_string(), rec);
        self.dirty.insert(p.to_string());
    }

    fn remove_one(&mut self, p: &str) {
        if let Some(old) = self.nodes.remove(p) {
            if let Some(e) = old.expire {
                self.ttl.remove(&(e, p.to_string()));
            }
            self.dirty.insert(p.to_string());
        }
    }

    /// Removes `p` and everything below it; returns the removed paths, children first.
    fn remove_tree(&mut self, p: &str) -> Vec<String> {
        let prefix = format!("{p}/");
        let mut below: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        // Deepest first, so a directory is reported after its children.
        below.sort_by(|a, b| b.matches('/').count().cmp(&a.matches('/').count()).then(a.cmp(b)));
        for k in &below {
            self.remove_one(k);
        }
        self.remove_one(p);
        below.push(p.to_string());
        below
    }

    /// Direct children of directory `p`, by path.
    fn children(&self, p: &str) -> Vec<String> {
        let prefix = if p == "/" { "/".to_string() } else { format!("{p}/") };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// etcd's `internalGet`: walks from the root; a file on the way is "not a directory".
    fn get_node(&self, p: &str) -> Result<&NodeRecord, V2Error> {
        let mut cur = "/".to_string();
        for name in p.split('/').filter(|c| !c.is_empty()) {
            let node = &self.nodes[&cur];
            if !node.dir {
                return Err(V2Error::new(code::NOT_DIR, cur, self.index));
            }
            let next = path::join(&cur, name);
            if !self.nodes.contains_key(&next) {
                return Err(V2Error::new(code::KEY_NOT_FOUND, next, self.index));
            }
            cur = next;
        }
        Ok(&self.nodes[&cur])
    }

    /// etcd's `Repr`: a node, a directory's children only when recursive, hidden ones left out.
    fn repr(&self, p: &str, recursive: bool, now: i64) -> NodeExtern {
        let n = &self.nodes[p];
        let mut out = NodeExtern {
            key: p.to_string(),
            dir: n.dir,
            modified_index: n.modified,
            created_index: n.created,
            ..Default::default()
        };
        if !n.dir {
            out.value = Some(n.value.clone());
        }
        out.set_expiry(n.expire, now);
        if n.dir && recursive {
            out.nodes = self.listed(p, true, now);
        }
        out
    }

    /// A directory's visible children as `Repr` shows them (sorted by key: the order etcd
    /// gives with `sorted=true`; without it etcd's order is random).
    fn listed(&self, p: &str, recursive: bool, now: i64) -> Vec<NodeExtern> {
        self.children(p)
            .iter()
            .filter(|c| !path::is_hidden_name(c))
            .map(|c| self.repr(c, recursive, now))
            .collect()
    }

    /// etcd's `loadInternalNode`: a directory lists its children (recursively if asked).
    fn load(&self, ext: &mut NodeExtern, p: &str, recursive: bool, now: i64) {
        let n = &self.nodes[p];
        if n.dir {
            ext.dir = true;
            ext.nodes = self.listed(p, recursive, now);
        } else {
            ext.value = Some(n.value.clone());
        }
        ext.set_expiry(n.expire, now);
    }

    /// `Get`.
    pub fn get(&self, p: &str, recursive: bool, now: i64) -> Result<Event, V2Error> {
        let p = path::clean(p);
        let n = self.get_node(&p)?;
        let mut e = Event::new("get", &p, n.modified, n.created);
        if let Some(ext) = e.node.as_mut() {
            self.load(ext, &p, recursive, now);
        }
        Ok(e)
    }

    /// `Create` (POST with `unique`: an in-order key named after the next index).
    pub fn create(
        &mut self,
        p: &str,
        dir: bool,
        value: &str,
        unique: bool,
        expire: Option<i64>,
        now: i64,
    ) -> Result<Change, V2Error> {
        self.internal_create(p, dir, value, unique, false, expire, "create", now).map(Into::into)
    }

    /// `Set`: creates or replaces a key (never a directory); with `refresh` only the TTL.
    pub fn set(
        &mut self,
        p: &str,
        dir: bool,
        value: &str,
        refresh: bool,
        expire: Option<i64>,
        now: i64,
    ) -> Result<Change, V2Error> {
        let clean = path::clean(p);
        let prev = match self.get_node(&clean) {
            Ok(_) => {
                let n = self.get_node(&clean)?;
                let mut prev = Event::new("get", &clean, n.modified, n.created);
                let value = n.value.clone();
                if let Some(ext) = prev.node.as_mut() {
                    self.load(ext, &clean, false, now);
                }
                Some((prev.node, value))
            }
            Err(e) if e.code == code::KEY_NOT_FOUND => {
                if refresh {
                    return Err(e);
                }
                None
            }
            Err(e) => return Err(e),
        };
        let value = match (&prev, refresh) {
            (Some((_, old)), true) => old.clone(),
            _ => value.to_string(),
        };
        let mut e = self.internal_create(p, dir, &value, false, true, expire, "set", now)?;
        if let Some((node, _)) = prev {
            e.prev_node = node;
        }
        e.refresh = refresh;
        Ok(e.into())
    }

    #[allow(clippy::too_many_arguments)] // etcd's internalCreate, argument for argument
    fn internal_create(
        &mut self,
        p: &str,
        dir: bool,
        value: &str,
        unique: bool,
        replace: bool,
        expire: Option<i64>,
        action: &str,
        now: i64,
    ) -> Result<Event, V2Error> {
        let (curr, next) = (self.index, self.index + 1);
        let p = if unique { path::clean(&format!("{p}/{next:020}")) } else { path::clean(p) };
        if READ_ONLY.contains(&p.as_str()) {
            return Err(V2Error::new(code::ROOT_RONLY, "/", curr));
        }
        let expire = expire.filter(|t| *t >= MIN_EXPIRE_NS);
        let (dir_name, name) = path::split(&p);
        let parent = self.make_dirs(dir_name, next).map_err(|mut e| {
            e.index = curr;
            e
        })?;
        let node_path = path::join(&parent, name);
        let mut e = Event::new(action, &node_path, next, next);
        if let Some(old) = self.nodes.get(&node_path) {
            if !replace {
                return Err(V2Error::new(code::NODE_EXIST, node_path, curr));
            }
            if old.dir {
                return Err(V2Error::new(code::NOT_FILE, node_path, curr));
            }
            e.prev_node = Some(self.repr(&node_path, false, now));
            self.remove_one(&node_path);
        }
        let rec = if dir {
            NodeRecord::dir(next, expire)
        } else {
            NodeRecord {
                dir: false,
                value: value.to_string(),
                created: next,
                modified: next,
                expire,
            }
        };
        if let Some(node) = e.node.as_mut() {
            if dir {
                node.dir = true;
            } else {
                node.value = Some(value.to_string());
            }
            node.set_expiry(expire, now);
        }
        self.insert(&node_path, rec);
        self.index = next;
        Ok(e)
    }

    /// etcd's `walk` with `checkDir`: the directories of `dir_path`, made where missing
    /// (created at `next`); a key on the way is "not a directory".
    fn make_dirs(&mut self, dir_path: &str, next: u64) -> Result<String, V2Error> {
        let mut cur = "/".to_string();
        for name in dir_path.split('/').filter(|c| !c.is_empty()) {
            let child = path::join(&cur, name);
            match self.nodes.get(&child) {
                Some(n) if n.dir => {}
                Some(_) => return Err(V2Error::new(code::NOT_DIR, child, self.index)),
                None => self.insert(&child, NodeRecord::dir(next, None)),
            }
            cur = child;
        }
        Ok(cur)
    }

    /// `Update`: a new value (a key) or TTL (either); with `refresh` only the TTL. An update
    /// without a TTL makes the node permanent, as in etcd.
    pub fn update(
        &mut self,
        p: &str,
        value: &str,
        refresh: bool,
        expire: Option<i64>,
        now: i64,
    ) -> Result<Change, V2Error> {
        let p = path::clean(p);
        if READ_ONLY.contains(&p.as_str()) {
            return Err(V2Error::new(code::ROOT_RONLY, "/", self.index));
        }
        let (curr, next) = (self.index, self.index + 1);
        let n = self.get_node(&p)?.clone();
        if n.dir && !value.is_empty() {
            return Err(V2Error::new(code::NOT_FILE, p, curr));
        }
        let value = if refresh { n.value.clone() } else { value.to_string() };
        let mut e = Event::new("update", &p, next, n.created);
        e.prev_node = Some(self.repr(&p, false, now));
        let mut rec = n.clone();
        if !rec.dir {
            rec.value = value.clone();
            rec.modified = next;
        }
        rec.expire = expire;
        if let Some(node) = e.node.as_mut() {
            if rec.dir {
                node.dir = true;
            } else {
                node.value = Some(value);
            }
            node.set_expiry(rec.expire, now);
        }
        self.insert(&p, rec);
        e.refresh = refresh;
        self.index = next;
        Ok(e.into())
    }

    /// `CompareAndSwap` (`prevValue`/`prevIndex`).
    #[allow(clippy::too_many_arguments)] // etcd's CompareAndSwap, argument for argument
    pub fn compare_and_swap(
        &mut self,
        p: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        refresh: bool,
        expire: Option<i64>,
        now: i64,
    ) -> Result<Change, V2Error> {
        let p = path::clean(p);
        if READ_ONLY.contains(&p.as_str()) {
            return Err(V2Error::new(code::ROOT_RONLY, "/", self.index));
        }
        let n = self.get_node(&p)?.clone();
        if n.dir {
            return Err(V2Error::new(code::NOT_FILE, p, self.index));
        }
        let value = if refresh { n.value.clone() } else { value.to_string() };
        compare(&n, prev_value, prev_index, self.index)?;
        self.index += 1;
        let mut e = Event::new("compareAndSwap", &p, self.index, n.created);
        e.prev_node = Some(self.repr(&p, false, now));
        let rec = NodeRecord { value: value.clone(), modified: self.index, expire, ..n };
        if let Some(node) = e.node.as_mut() {
            node.value = Some(value);
            node.set_expiry(expire, now);
        }
        self.insert(&p, rec);
        e.refresh = refresh;
        Ok(e.into())
    }

    /// `Delete`: a key, or with `dir` an empty directory, or with `recursive` a whole tree.
    pub fn delete(
        &mut self,
        p: &str,
        dir: bool,
        recursive: bool,
        now: i64,
    ) -> Result<Change, V2Error> {
        let p = path::clean(p);
        if READ_ONLY.contains(&p.as_str()) {
            return Err(V2Error::new(code::ROOT_RONLY, "/", self.index));
        }
        let dir = dir || recursive;
        let n = self.get_node(&p)?.clone();
        let next = self.index + 1;
        let mut e = Event::new("delete", &p, next, n.created);
        e.prev_node = Some(self.repr(&p, false, now));
        if n.dir {
            if let Some(node) = e.node.as_mut() {
                node.dir = true;
            }
            if !dir {
                return Err(V2Error::new(code::NOT_FILE, p, self.index));
            }
            if !recursive && !self.children(&p).is_empty() {
                return Err(V2Error::new(code::DIR_NOT_EMPTY, p, self.index));
            }
        }
        let removed = self.remove_tree(&p);
        self.index = next;
        Ok(Change { event: e, removed })
    }

    /// `CompareAndDelete` (`prevValue`/`prevIndex` on DELETE): keys only.
    pub fn compare_and_delete(
        &mut self,
        p: &str,
        prev_value: &str,
        prev_index: u64,
        now: i64,
    ) -> Result<Change, V2Error> {
        let p = path::clean(p);
        let n = self.get_node(&p)?.clone();
        if n.dir {
            return Err(V2Error::new(code::NOT_FILE, p, self.index));
        }
        compare(&n, prev_value, prev_index, self.index)?;
        self.index += 1;
        let mut e = Event::new("compareAndDelete", &p, self.index, n.created);
        e.prev_node = Some(self.repr(&p, false, now));
        let removed = self.remove_tree(&p);
        Ok(Change { event: e, removed })
    }

    /// `DeleteExpiredKeys`: every node whose expiry is at or before `cutoff` (unix ns), in
    /// expiry order, one `expire` event each.
    pub fn delete_expired(&mut self, cutoff: i64, now: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some((at, p)) = self.ttl.first().cloned() {
            if at > cutoff {
                break;
            }
            let Some(n) = self.nodes.get(&p).cloned() else {
                self.ttl.remove(&(at, p));
                continue;
            };
            self.index += 1;
            let mut e = Event::new("expire", &p, self.index, n.created);
            e.prev_node = Some(self.repr(&p, false, now));
            if n.dir {
                if let Some(node) = e.node.as_mut() {
                    node.dir = true;
                }
            }
            let removed = self.remove_tree(&p);
            changes.push(Change { event: e, removed });
        }
        changes
    }
}

/// etcd's `Compare` and `getCompareFailCause`.
fn compare(n: &NodeRecord, prev_value: &str, prev_index: u64, index: u64) -> Result<(), V2Error> {
    let index_ok = prev_index == 0 || n.modified == prev_index;
    let value_ok = prev_value.is_empty() || n.value == prev_value;
    let cause = match (value_ok, index_ok) {
        (true, true) => return Ok(()),
        (true, false) => format!("[{} != {}]", prev_index, n.modified),
        (false, true) => format!("[{} != {}]", prev_value, n.value),
        (false, false) => {
            format!("[{} != {}] [{} != {}]", prev_value, n.value, prev_index, n.modified)
        }
    };
    Err(V2Error::new(code::TEST_FAILED, cause, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(e: &Event) -> Option<&str> {
        e.node.as_ref().and_then(|n| n.value.as_deref())
    }

    #[test]
    fn set_get_and_errors_carry_etcds_indexes() {
        let mut t = Tree::default();
        let c = t.set("/1/foo", false, "bar", false, None, 0).unwrap();
        assert_eq!((c.event.index(), value(&c.event)), (1, Some("bar")));
        assert!(c.event.is_created());
        let c = t.set("/1/foo", false, "baz", false, None, 0).unwrap();
        assert_eq!(c.event.prev_node.as_ref().and_then(|n| n.value.as_deref()), Some("bar"));
        let err = t.create("/1/foo", false, "x", false, None, 0).unwrap_err();
        assert_eq!((err.code, err.cause.as_str(), err.index), (105, "/1/foo", 2));
        let err = t.set("/1/foo/bar", false, "x", false, None, 0).unwrap_err();
        assert_eq!((err.code, err.cause.as_str()), (104, "/1/foo"));
        let err = t.get("/1/nope", false, 0).unwrap_err();
        assert_eq!((err.code, err.cause.as_str(), err.index), (100, "/1/nope", 2));
    }

    #[test]
    fn directories_list_and_delete_as_etcd() {
        let mut t = Tree::default();
        t.set("/1/d/a", false, "1", false, None, 0).unwrap();
        t.set("/1/d/_h", false, "2", false, None, 0).unwrap();
        t.create("/1/d/e", true, "", false, None, 0).unwrap();
        let got = t.get("/1/d", false, 0).unwrap();
        let keys: Vec<_> = got.node.unwrap().nodes.into_iter().map(|n| n.key).collect();
        assert_eq!(keys, ["/1/d/a", "/1/d/e"]);
        assert_eq!(t.delete("/1/d", false, false, 0).unwrap_err().code, 102);
        assert_eq!(t.delete("/1/d", true, false, 0).unwrap_err().code, 108);
        let c = t.delete("/1/d", false, true, 0).unwrap();
        assert_eq!(c.removed.last().map(String::as_str), Some("/1/d"));
        assert_eq!(c.removed.len(), 4);
        assert_eq!(t.delete("/1", true, true, 0).unwrap_err().code, 107);
    }

    #[test]
    fn compare_and_swap_causes() {
        let mut t = Tree::default();
        t.set("/1/k", false, "v", false, None, 0).unwrap();
        let e = t.compare_and_swap("/1/k", "w", 0, "x", false, None, 0).unwrap_err();
        assert_eq!((e.code, e.cause.as_str()), (101, "[w != v]"));
        let e = t.compare_and_swap("/1/k", "w", 7, "x", false, None, 0).unwrap_err();
        assert_eq!(e.cause, "[w != v] [7 != 1]");
        t.compare_and_swap("/1/k", "v", 1, "x", false, None, 0).unwrap();
        assert_eq!(t.index(), 2);
    }

    #[test]
    fn expiry_removes_in_order_and_unique_keys_are_padded() {
        let mut t = Tree::default();
        let far = MIN_EXPIRE_NS + 10;
        t.set("/1/a", false, "1", false, Some(far + 2), 0).unwrap();
        t.set("/1/b", false, "1", false, Some(far + 1), 0).unwrap();
        let c = t.create("/1/q", false, "x", true, None, 0).unwrap();
        assert_eq!(c.event.key(), "/1/q/00000000000000000003");
        assert!(t.delete_expired(far, 0).is_empty());
        let gone: Vec<_> =
            t.delete_expired(far + 5, 0).into_iter().map(|c| c.event.key().to_string()).collect();
        assert_eq!(gone, ["/1/b", "/1/a"]);
        assert_eq!(t.next_expiry(), None);
    }
}
