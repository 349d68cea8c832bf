//! `oxcd migrate --data-dir ETCD_DIR --endpoints URL`: the v2 keys of a stopped **etcd**
//! member (3.4 or 3.5 run with `--enable-v2`), read from its data dir without running etcd,
//! as `etcdctl migrate` did before etcd 3.5 removed it.
//!
//! etcd keeps its v2 store only in raft's files: the newest `member/snap/*.snap` holds the
//! whole tree as JSON (`store.Save()`), and `member/wal/*.wal` the entries after it. The
//! tree is rebuilt from the snapshot and the committed v2 requests are replayed onto it with
//! the same operations oxcd's own v2 store applies (`v2::tree::Tree::apply`), so the result
//! is the store that member would have served. Nothing in the data dir is written.

pub mod format;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use prost::Message;
use serde::Deserialize;

use self::format::{HardState, RaftEntry, RaftSnapshot, SnapFile, RECORD_ENTRY, RECORD_STATE};
use super::v2_json::V3Key;
use super::MigrateError;
use crate::v2::command::V2Command;
use crate::v2::convert::remaining_ttl;
use crate::v2::event::parse_rfc3339_nano;
use crate::v2::tree::{NodeRecord, Tree};

/// The v2 store read out of an etcd data dir.
#[derive(Debug)]
pub struct EtcdV2Store {
    /// Every key (directories dropped) as v3 key-values, TTLs remaining as of the read.
    pub keys: Vec<V3Key>,
    /// The v2 index the store stands at (etcd's `X-Etcd-Index` when it stopped).
    pub v2_index: u64,
    /// The raft snapshot it started from (0: none) and the v2 requests replayed after it.
    pub snapshot_index: u64,
    /// How many committed v2 writes the WAL added after the snapshot.
    pub replayed: usize,
    /// Whether the WAL ended in a record cut short (a crash mid-write: dropped, as etcd
    /// drops it when it restarts).
    pub torn_tail: bool,
}

/// Whether `data_dir` looks like an etcd member's (`member/snap` and `member/wal`).
pub fn is_etcd_data_dir(data_dir: &Path) -> bool {
    let member = data_dir.join("member");
    member.join("wal").is_dir() && member.join("snap").is_dir()
}

/// Reads the v2 store of the stopped etcd member at `data_dir` as of `now` (unix ns, for
/// the TTLs left).
pub fn read(data_dir: &Path, now: i64) -> Result<EtcdV2Store, MigrateError> {
    let fail = |message: String| MigrateError::Config(format!("{}: {message}", data_dir.display()));
    let member = data_dir.join("member");
    let wal_files = sorted_files(&member.join("wal"), "wal").map_err(&fail)?;
    let Some(last_wal) = wal_files.last() else {
        return Err(fail("no WAL files in member/wal: not an etcd data dir".into()));
    };
    refuse_if_running(last_wal).map_err(&fail)?;
    let (snapshot_index, mut tree) =
        match sorted_files(&member.join("snap"), "snap").map_err(&fail)?.last() {
            Some(newest) => read_snapshot(newest).map_err(&fail)?,
            None => (0, Tree::default()),
        };
    let log = read_wal(&wal_files).map_err(&fail)?;
    if let Some(first) = log.entries.keys().next() {
        if *first > snapshot_index + 1 {
            return Err(fail(format!(
                "the WAL starts at index {first} but the newest snapshot ends at \
                 {snapshot_index}: the entries between are missing"
            )));
        }
    }
    let mut replayed = 0;
    let committed = log.entries.range(snapshot_index + 1..).take_while(|(i, _)| **i <= log.commit);
    for entry in committed.map(|(_, e)| e) {
        if entry.kind != 0 || entry.data.is_empty() {
            continue;
        }
        let Some(req) = format::v2_request(&entry.data) else { continue };
        if let Some(cmd) = command(req) {
            let writes = !matches!(cmd, V2Command::Sync { .. });
            // A failed request (a compare that did not hold) fails here as it did in etcd.
            let _ = tree.apply(cmd, now);
            replayed += usize::from(writes);
        }
    }
    Ok(EtcdV2Store {
        keys: keys_of(&tree, now),
        v2_index: tree.index(),
        snapshot_index,
        replayed,
        torn_tail: log.torn_tail,
    })
}

/// The files in `dir` ending in `.{ext}`, in name order (etcd names them so that this is
/// log order).
fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// etcd holds an exclusive lock on its newest WAL file while it runs (an open file
/// description lock, `F_OFD_SETLK`, or `flock` where those are missing); reading a live
/// member's log would miss what it has not yet written.
fn refuse_if_running(last_wal: &Path) -> Result<(), String> {
    let file = File::open(last_wal).map_err(|e| format!("{}: {e}", last_wal.display()))?;
    let fd = file.as_raw_fd();
    // SAFETY: plain fcntl/flock calls on a descriptor this function owns, with a zeroed
    // `flock` struct it owns; the locks go away when `file` is closed.
    let locked = unsafe {
        let mut lock: libc::flock = std::mem::zeroed();
        lock.l_type = libc::F_RDLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        let ofd = libc::fcntl(fd, libc::F_OFD_SETLK, &lock) != 0;
        ofd || libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) != 0
    };
    if locked {
        return Err(format!(
            "{} is locked: the etcd member is still running; stop it first",
            last_wal.display()
        ));
    }
    Ok(())
}

/// The tree and raft index of a `.snap` file, its CRC checked.
fn read_snapshot(path: &Path) -> Result<(u64, Tree), String> {
    let what = |m: String| format!("snapshot {}: {m}", path.display());
    let bytes = std::fs::read(path).map_err(|e| what(e.to_string()))?;
    let file =
        SnapFile::decode(bytes.as_slice()).map_err(|e| what(format!("not a snapshot: {e}")))?;
    let mut crc = crate::snapshot_file::crc32c::Crc32c::new();
    crc.update(&file.data);
    if crc.finish() != file.crc {
        return Err(what("CRC mismatch (the file is corrupt)".into()));
    }
    let snap = RaftSnapshot::decode(file.data.as_slice())
        .map_err(|e| what(format!("not a raft snapshot: {e}")))?;
    let index = snap.metadata.map(|m| m.index).unwrap_or(0);
    let store: StoreJson = serde_json::from_slice(&snap.data)
        .map_err(|e| what(format!("not etcd's v2 store: {e}")))?;
    let mut nodes = BTreeMap::new();
    flatten(&store.root, &mut nodes).map_err(what)?;
    Ok((index, Tree::new(store.current_index, nodes)))
}

/// etcd's `store.Save()` JSON (the fields a migration needs).
#[derive(Deserialize)]
struct StoreJson {
    #[serde(rename = "Root")]
    root: NodeJson,
    #[serde(rename = "CurrentIndex")]
    current_index: u64,
}

/// One node of `store.Save()`'s JSON: a directory has `Children` (possibly empty), a key
/// has `null`.
#[derive(Deserialize)]
struct NodeJson {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "CreatedIndex")]
    created: u64,
    #[serde(rename = "ModifiedIndex")]
    modified: u64,
    #[serde(rename = "ExpireTime", default)]
    expire_time: String,
    #[serde(rename = "Value", default)]
    value: String,
    #[serde(rename = "Children")]
    children: Option<BTreeMap<String, NodeJson>>,
}

/// Every node under (and with) `node`, by path, as oxcd's tree keeps them.
fn flatten(node: &NodeJson, out: &mut BTreeMap<String, NodeRecord>) -> Result<(), String> {
    // Go's zero time is "no expiry"; any other time must read back.
    let expire = if node.expire_time.is_empty() || node.expire_time.starts_with("0001-01-01") {
        None
    } else {
        Some(parse_rfc3339_nano(&node.expire_time).ok_or_else(|| {
            format!("{}: unreadable ExpireTime {:?}", node.path, node.expire_time)
        })?)
    };
    out.insert(
        node.path.clone(),
        NodeRecord {
            dir: node.children.is_some(),
            value: node.value.clone(),
            created: node.created,
            modified: node.modified,
            expire,
        },
    );
    for child in node.children.iter().flat_map(|c| c.values()) {
        flatten(child, out)?;
    }
    Ok(())
}

/// What the WAL holds: entries by index (a later entry at an index replaces that index and
/// everything after it, as a new leader's log does) and the commit index last recorded.
struct Log {
    entries: BTreeMap<u64, RaftEntry>,
    commit: u64,
    torn_tail: bool,
}

/// Reads every record of the WAL files, in order.
fn read_wal(files: &[PathBuf]) -> Result<Log, String> {
    let mut log = Log { entries: BTreeMap::new(), commit: 0, torn_tail: false };
    let mut crc = 0u32;
    for (i, path) in files.iter().enumerate() {
        let what = |m: String| format!("WAL {}: {m}", path.display());
        let bytes = std::fs::read(path).map_err(|e| what(e.to_string()))?;
        let mut torn = false;
        let records = format::wal_records(&bytes, &mut crc, &mut torn).map_err(what)?;
        if torn && i + 1 < files.len() {
            return Err(what("a record is cut short before the last WAL file".into()));
        }
        log.torn_tail |= torn;
        for rec in records {
            match rec.kind {
                RECORD_ENTRY => {
                    let entry = RaftEntry::decode(rec.data.as_slice())
                        .map_err(|e| what(format!("bad entry: {e}")))?;
                    log.entries.split_off(&entry.index);
                    log.entries.insert(entry.index, entry);
                }
                RECORD_STATE => {
                    let state = HardState::decode(rec.data.as_slice())
                        .map_err(|e| what(format!("bad hard state: {e}")))?;
                    if state.commit > 0 {
                        log.commit = state.commit;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(log)
}

/// The command oxcd's v2 store applies for one of etcd's replicated v2 requests (`None`
/// for reads, which change nothing). Go strings may hold any bytes; etcd's own snapshot
/// JSON already replaces invalid UTF-8, and so does this.
fn command(req: format::V2Request) -> Option<V2Command> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let path = text(&req.path);
    Some(match req.method.as_slice() {
        b"PUT" => V2Command::Put {
            path,
            value: text(&req.val),
            dir: req.dir,
            prev_value: text(&req.prev_value),
            prev_index: req.prev_index,
            prev_exist: req.prev_exist,
            refresh: req.refresh,
            expiration: req.expiration,
        },
        b"POST" => V2Command::Post {
            path,
            value: text(&req.val),
            dir: req.dir,
            expiration: req.expiration,
        },
        b"DELETE" => V2Command::Delete {
            path,
            dir: req.dir,
            recursive: req.recursive,
            prev_value: text(&req.prev_value),
            prev_index: req.prev_index,
        },
        b"SYNC" => V2Command::Sync { time: req.time },
        _ => return None,
    })
}

/// The keys of the tree as v3 key-values, with the whole seconds left of their TTL; keys
/// already expired by `now` are left out.
fn keys_of(tree: &Tree, now: i64) -> Vec<V3Key> {
    tree.keys()
        .into_iter()
        .filter_map(|(key, value, expire)| {
            let ttl = match expire {
                Some(at) if at <= now => return None,
                Some(at) => Some(remaining_ttl(at, now)),
                None => None,
            };
            Some(V3Key { key: key.into_bytes(), value: value.into_bytes(), ttl })
        })
        .collect()
}
