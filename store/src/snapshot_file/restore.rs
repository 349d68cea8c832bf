//! `snapshot restore`: turns an etcd snapshot file (from etcd 3.4/3.5/3.6 or from oxcd) into a
//! fresh oxcd data dir that `oxcd` then serves as a new cluster holding that data.
//!
//! As etcdutl does, everything the keyspace holds is kept — every revision of every key with
//! its create/mod revision and version, tombstones, the compaction point, leases with their
//! TTLs (their timers restart in full when the member starts, as etcd's do), auth users,
//! roles and settings, alarms — and the membership is reset: the members are the ones named
//! by `--initial-cluster`, with ids derived from their peer URLs and the cluster token, and
//! raft starts as an initialized one-configuration cluster whose first log id is already
//! applied and purged (see `LogStore::initialize_offline`), so every member restored from the
//! same file with the same flags starts the same cluster, with `--initial-cluster-state` new
//! or existing, and members added later receive the data as a raft snapshot.
//!
//! Nothing half-made is ever left at `--data-dir`: the database is built in a staging
//! directory beside where it belongs (`<data-dir>/member.restore-tmp`), flushed, and renamed
//! to `<data-dir>/member` only once complete; a failure removes the staging directory (and
//! the data dir, if the restore created it). A staging directory left by a killed restore is
//! removed by the next one, so a restore in an init container can simply be retried. A data
//! dir that exists and is empty (a mounted volume) is used in place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use openraft::BasicNode;
use prost::Message;
use rocksdb::WriteBatch;

use super::file::open_verified;
use super::SnapshotError;
use crate::cluster;
use crate::lease::LeaseRecord;
use crate::mvcc::{MvccStore, Revision};
use crate::pb::authpb::{Role, User};
use crate::pb::etcdserverpb::AlarmMember;
use crate::pb::mvccpb::KeyValue;
use crate::pb::oxcdpb::MemberAttributes;
use crate::raft::log_store::LogStore;
use crate::raft::types::{encode, StoredMembership};
use crate::snapshot_file::export::LeasePb;
use crate::storage::schema::{auth_keys, meta_keys, raft_meta_keys};
use crate::storage::{Cf, Storage};

/// The member's directory inside a data dir; the database is `member/db` (see
/// `EtcdServer::start`).
pub const MEMBER_DIR: &str = "member";
/// Where a restore builds `member/` before renaming it into place.
pub const STAGING_DIR: &str = "member.restore-tmp";
/// Bytes of rows gathered before each write to RocksDB.
const BATCH_BYTES: usize = 16 << 20;

/// What to restore, and as which member of which cluster.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// The data dir to create.
    pub data_dir: PathBuf,
    /// This member's name; must be one of `initial_cluster`.
    pub name: String,
    /// The new cluster's members, (name, peer URLs), in `--initial-cluster` order.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// `--initial-cluster-token`: with the peer URLs, it makes the member ids.
    pub token: String,
    /// `--initial-advertise-peer-urls`: must be this member's URLs in `initial_cluster`.
    pub peer_urls: Vec<String>,
    /// Accept a file without (or with a wrong) hash trailer.
    pub skip_hash_check: bool,
}

/// What was restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// The store's revision after the restore.
    pub revision: i64,
    /// The compaction point kept (0 if none).
    pub compacted: i64,
    /// Rows of the `key` bucket (every revision of every key, tombstones included).
    pub revisions: u64,
    /// Leases.
    pub leases: u64,
    /// Auth users and roles.
    pub users: u64,
    /// Auth roles.
    pub roles: u64,
    /// Whether auth is enabled.
    pub auth_enabled: bool,
    /// This member's id.
    pub member_id: u64,
    /// The new cluster's id.
    pub cluster_id: u64,
    /// The new cluster's members: (id, name).
    pub members: Vec<(u64, String)>,
    /// The snapshot's database size in bytes.
    pub snapshot_bytes: u64,
}

/// Restores `cfg.snapshot` into `cfg.data_dir`; see the module doc for what is kept.
pub fn restore(cfg: &RestoreConfig) -> Result<Restored, SnapshotError> {
    let (member_id, members) = new_members(cfg)?;
    let staging = Staging::prepare(&cfg.data_dir)?;
    let file = open_verified(&cfg.snapshot, cfg.skip_hash_check)?;
    let mut restored = Restored {
        member_id,
        cluster_id: cluster::cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>()),
        members: members.iter().map(|m| (m.id, m.name.clone())).collect(),
        snapshot_bytes: file.db.size(),
        ..Restored::default()
    };
    {
        let storage = Storage::open(&staging.path().join("db"))?;
        copy_state(&file.db, &storage, &mut restored)?;
        write_membership(&storage, member_id, restored.cluster_id, &members)?;
        for cf in Cf::ALL {
            storage.db().flush_cf(storage.cf(*cf))?;
        }
        storage.sync_wal()?;
    }
    staging.commit()?;
    Ok(restored)
}

/// Checks the flags as etcd's bootstrap does; returns this member's id and the members.
fn new_members(cfg: &RestoreConfig) -> Result<(u64, Vec<MemberAttributes>), SnapshotError> {
    let local =
        cfg.initial_cluster.iter().find(|(name, _)| *name == cfg.name).ok_or_else(|| {
            SnapshotError::Config(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                cfg.name
            ))
        })?;
    let sorted = |urls: &[String]| urls.iter().cloned().collect::<BTreeSet<_>>();
    if sorted(&local.1) != sorted(&cfg.peer_urls) {
        return Err(SnapshotError::Config(format!(
            "--initial-cluster has {}={} but --initial-advertise-peer-urls={}",
            cfg.name,
            local.1.join(","),
            cfg.peer_urls.join(",")
        )));
    }
    let mut members: Vec<MemberAttributes> = Vec::new();
    for (name, urls) in &cfg.initial_cluster {
        let id = cluster::member_id(urls, &cfg.token, None);
        if members.iter().any(|m| m.id == id) {
            return Err(SnapshotError::Config(format!(
                "--initial-cluster names the peer URLs {} twice",
                urls.join(",")
            )));
        }
        members.push(MemberAttributes {
            id,
            name: name.clone(),
            peer_urls: urls.clone(),
            client_urls: Vec::new(),
            pending_voter: false,
        });
    }
    Ok((cluster::member_id(&local.1, &cfg.token, None), members))
}

/// What `copy_state` does with each (key, value) of a bucket.
type RowFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), SnapshotError> + 'a;

/// Rows gathered for one RocksDB write.
struct Rows<'a> {
    storage: &'a Storage,
    batch: WriteBatch,
}

impl Rows<'_> {
    fn put(&mut self, cf: Cf, key: &[u8], value: &[u8]) -> Result<(), SnapshotError> {
        self.batch.put_cf(self.storage.cf(cf), key, value);
        if self.batch.size_in_bytes() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SnapshotError> {
        let mut opts = rocksdb::WriteOptions::default();
        // No WAL: the staging database is flushed to SST files and synced before it is
        // renamed into place, and a crash before that leaves only staging to remove.
        opts.disable_wal(true);
        self.storage.db().write_opt(std::mem::take(&mut self.batch), &opts)?;
        Ok(())
    }
}

/// Copies every bucket etcd's keyspace lives in; `members`, `members_removed` and `cluster`
/// are dropped (the membership is new), unknown buckets too.
fn copy_state(
    db: &super::bbolt::BoltFile,
    storage: &Storage,
    out: &mut Restored,
) -> Result<(), SnapshotError> {
    let mut rows = Rows { storage, batch: WriteBatch::default() };
    let mut seen = db.seen();
    let (mut finished, mut scheduled) = (0i64, 0i64);
    let mut newest = 0i64;
    let mut alarms: BTreeSet<(u64, i32)> = BTreeSet::new();
    for bucket in db.buckets(&mut seen)? {
        let mut each = |f: &mut RowFn<'_>| {
            db.for_each(&bucket, &mut seen, &mut |item| {
                if item.is_bucket {
                    return Ok(());
                }
                f(item.key, item.value)
            })
        };
        match bucket.name.as_slice() {
            b"key" => each(&mut |k, v| {
                let (rev, tombstone) = revision_of(k)?;
                let kv = KeyValue::decode(v)
                    .map_err(|e| bad(&format!("the value of revision {}: {e}", rev.main)))?;
                newest = newest.max(rev.main);
                out.revisions += 1;
                if tombstone {
                    // etcd keeps only the key in a tombstone; oxcd also its revision.
                    let kv = KeyValue { key: kv.key, mod_revision: rev.main, ..Default::default() };
                    rows.put(Cf::Kv, &rev.to_bytes(), &kv.encode_to_vec())
                } else {
                    rows.put(Cf::Kv, &rev.to_bytes(), v)
                }
            })?,
            b"meta" => each(&mut |k, v| {
                match k {
                    b"finishedCompactRev" => finished = revision_of(v)?.0.main,
                    b"scheduledCompactRev" => scheduled = revision_of(v)?.0.main,
                    _ => {}
                }
                Ok(())
            })?,
            b"lease" => each(&mut |_, v| {
                let lease = LeasePb::decode(v).map_err(|e| bad(&format!("a lease: {e}")))?;
                let rec = LeaseRecord { id: lease.id, ttl: lease.ttl };
                let bytes = bincode::serialize(&rec).map_err(|e| bad(&e.to_string()))?;
                out.leases += 1;
                rows.put(Cf::Lease, &lease.id.to_be_bytes(), &bytes)
            })?,
            b"auth" => each(&mut |k, v| match k {
                b"authEnabled" => {
                    out.auth_enabled = v.first() == Some(&1);
                    rows.put(Cf::Auth, auth_keys::ENABLED, v)
                }
                b"authRevision" => rows.put(Cf::Auth, auth_keys::REVISION, v),
                _ => Ok(()),
            })?,
            b"authUsers" => each(&mut |k, v| {
                User::decode(v).map_err(|e| bad(&format!("an auth user: {e}")))?;
                out.users += 1;
                rows.put(Cf::Auth, &[auth_keys::USER_PREFIX, k].concat(), v)
            })?,
            b"authRoles" => each(&mut |k, v| {
                Role::decode(v).map_err(|e| bad(&format!("an auth role: {e}")))?;
                out.roles += 1;
                rows.put(Cf::Auth, &[auth_keys::ROLE_PREFIX, k].concat(), v)
            })?,
            b"alarm" => each(&mut |k, _| {
                let a = AlarmMember::decode(k).map_err(|e| bad(&format!("an alarm: {e}")))?;
                alarms.insert((a.member_id, a.alarm));
                Ok(())
            })?,
            // Walked all the same: the structure check covers every page.
            _ => each(&mut |_, _| Ok(()))?,
        }
    }
    db.check(&seen)?;

    // etcd's current revision is never below its compaction point, even once every row
    // up to it has been compacted away.
    out.compacted = finished;
    out.revision = newest.max(finished).max(1);
    let meta = Cf::Meta;
    rows.put(meta, meta_keys::REVISION, &out.revision.to_be_bytes())?;
    if finished > 0 {
        rows.put(meta, meta_keys::COMPACTED, &finished.to_be_bytes())?;
    }
    if !alarms.is_empty() {
        let list: Vec<(u64, i32)> = alarms.into_iter().collect();
        let bytes = bincode::serialize(&list).map_err(|e| bad(&e.to_string()))?;
        rows.put(meta, meta_keys::ALARMS, &bytes)?;
    }
    rows.flush()?;

    // A compaction etcd had scheduled but not finished is finished here, as etcd finishes
    // it when it starts.
    if scheduled > finished && scheduled <= out.revision {
        let mvcc = MvccStore::open(storage.clone())?;
        let mut writer = mvcc.writer();
        writer.compact(scheduled)?;
        writer.commit()?;
        out.compacted = scheduled;
    }
    Ok(())
}

/// The new membership: member records, this member's identity and raft's first entry.
fn write_membership(
    storage: &Storage,
    member_id: u64,
    cluster_id: u64,
    members: &[MemberAttributes],
) -> Result<(), SnapshotError> {
    let mut batch = WriteBatch::default();
    for m in members {
        batch.put_cf(storage.cf(Cf::Members), m.id.to_be_bytes(), m.encode_to_vec());
    }
    let raft_meta = storage.cf(Cf::RaftMeta);
    batch.put_cf(raft_meta, raft_meta_keys::MEMBER_ID, member_id.to_be_bytes());
    batch.put_cf(raft_meta, raft_meta_keys::CLUSTER_ID, cluster_id.to_be_bytes());
    storage.db().write(batch)?;
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|m| (m.id, BasicNode::new(m.peer_urls.first().cloned().unwrap_or_default())))
        .collect();
    let internal = |e: &dyn std::fmt::Display| {
        SnapshotError::Storage(crate::Error::internal("initialize raft", e.to_string()))
    };
    let first = LogStore::new(storage.clone()).initialize_offline().map_err(|e| internal(&e))?;
    // The state machine holds the restored data as of the first log id, the membership
    // applied: a member added later gets it all in a raft snapshot.
    let voters = nodes.keys().copied().collect();
    let membership =
        StoredMembership::new(Some(first), openraft::Membership::new(vec![voters], nodes));
    let meta = storage.cf(Cf::Meta);
    let mut batch = WriteBatch::default();
    batch.put_cf(meta, meta_keys::APPLIED, encode(&Some(first)).map_err(|e| internal(&e))?);
    batch.put_cf(meta, meta_keys::MEMBERSHIP, encode(&membership).map_err(|e| internal(&e))?);
    storage.db().write(batch)?;
    Ok(())
}

/// etcd's revision key: `main BE ‖ '_' ‖ sub BE`, plus `'t'` for a tombstone.
fn revision_of(key: &[u8]) -> Result<(Revision, bool), SnapshotError> {
    let tombstone = match key.len() {
        17 => false,
        18 if key[17] == b't' => true,
        _ => return Err(bad(&format!("{key:?} is not a revision"))),
    };
    if key[8] != b'_' {
        return Err(bad(&format!("{key:?} is not a revision")));
    }
    let main = i64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
    let sub = i64::from_be_bytes(key[9..17].try_into().expect("8 bytes"));
    Ok((Revision::new(main, sub), tombstone))
}

fn bad(what: &str) -> SnapshotError {
    SnapshotError::Corrupt(what.to_string())
}

/// The staging directory, removed on drop unless committed.
struct Staging {
    data_dir: PathBuf,
    path: PathBuf,
    /// The restore created the data dir itself (so a failure removes it again).
    created_data_dir: bool,
    committed: bool,
}

impl Staging {
    /// Checks that `data_dir` is absent or empty (but for a stale staging directory, which
    /// is removed) and creates the staging directory in it.
    fn prepare(data_dir: &Path) -> Result<Staging, SnapshotError> {
        let not_empty = || {
            SnapshotError::Config(format!(
                "data-dir {:?} not empty or could not be read",
                data_dir.display().to_string()
            ))
        };
        let path = data_dir.join(STAGING_DIR);
        let created_data_dir = match std::fs::read_dir(data_dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|_| not_empty())?;
                    if entry.file_name() != STAGING_DIR {
                        return Err(not_empty());
                    }
                }
                if path.exists() {
                    std::fs::remove_dir_all(&path).map_err(SnapshotError::Io)?;
                }
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    SnapshotError::Config(format!("create {}: {e}", data_dir.display()))
                })?;
                true
            }
            Err(_) => return Err(not_empty()),
        };
        let staging =
            Staging { data_dir: data_dir.to_path_buf(), path, created_data_dir, committed: false };
        std::fs::create_dir(&staging.path).map_err(SnapshotError::Io)?;
        Ok(staging)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staging directory to `member/` and syncs the data dir.
    fn commit(mut self) -> Result<(), SnapshotError> {
        let target = self.data_dir.join(MEMBER_DIR);
        std::fs::rename(&self.path, &target).map_err(SnapshotError::Io)?;
        self.committed = true;
        // The rename must survive a crash before the server first starts.
        std::fs::File::open(&self.data_dir).and_then(|d| d.sync_all()).map_err(SnapshotError::Io)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
        if self.created_data_dir {
            let _ = std::fs::remove_dir(&self.data_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::snapshot_file::export;

    fn config(dir: &Path, snapshot: PathBuf) -> RestoreConfig {
        RestoreConfig {
            snapshot,
            data_dir: dir.join("restored"),
            name: "m1".into(),
            initial_cluster: vec![
                ("m1".into(), vec!["http://127.0.0.1:1".into()]),
                ("m2".into(), vec!["http://127.0.0.1:2".into()]),
            ],
            token: "tok".into(),
            peer_urls: vec!["http://127.0.0.1:1".into()],
            skip_hash_check: false,
        }
    }

    /// An oxcd snapshot file (with its trailer) of a store holding a few rows.
    fn snapshot_file(dir: &Path) -> PathBuf {
        use sha2::Digest;
        let storage = Storage::open(&dir.join("source")).unwrap();
        let db = storage.db();
        let kv = KeyValue {
            key: b"a".to_vec(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            value: b"x".to_vec(),
            lease: 7,
        };
        db.put_cf(storage.cf(Cf::Kv), Revision::new(2, 0).to_bytes(), kv.encode_to_vec()).unwrap();
        let tomb = KeyValue { key: b"a".to_vec(), mod_revision: 3, ..Default::default() };
        db.put_cf(storage.cf(Cf::Kv), Revision::new(3, 0).to_bytes(), tomb.encode_to_vec())
            .unwrap();
        let lease = bincode::serialize(&LeaseRecord { id: 7, ttl: 60 }).unwrap();
        db.put_cf(storage.cf(Cf::Lease), 7i64.to_be_bytes(), lease).unwrap();
        db.put_cf(storage.cf(Cf::Meta), meta_keys::COMPACTED, 2i64.to_be_bytes()).unwrap();
        let (mut file, _) = export::write_temp(&storage).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        let hash = sha2::Sha256::digest(&bytes);
        bytes.extend_from_slice(&hash);
        let path = dir.join("snap.db");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn restores_rows_and_resets_membership() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), snapshot_file(dir.path()));
        let restored = restore(&cfg).unwrap();
        assert_eq!((restored.revision, restored.compacted), (3, 2));
        assert_eq!((restored.revisions, restored.leases), (2, 1));
        assert_eq!(restored.members.len(), 2);

        let names: Vec<_> = std::fs::read_dir(&cfg.data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![MEMBER_DIR.to_string()], "staging renamed into place");
        let storage = Storage::open(&cfg.data_dir.join(MEMBER_DIR).join("db")).unwrap();
        let mvcc = MvccStore::open(storage.clone()).unwrap();
        assert_eq!((mvcc.current_revision(), mvcc.compacted_revision()), (3, 2));
        let tomb = storage.db().get_cf(storage.cf(Cf::Kv), Revision::new(3, 0).to_bytes());
        let tomb = KeyValue::decode(tomb.unwrap().unwrap().as_slice()).unwrap();
        assert_eq!(tomb.mod_revision, 3, "tombstones carry their revision in oxcd");
        let id = storage.db().get_cf(storage.cf(Cf::RaftMeta), raft_meta_keys::MEMBER_ID);
        assert_eq!(id.unwrap().unwrap(), restored.member_id.to_be_bytes());
        let log: Vec<_> = storage
            .db()
            .iterator_cf(storage.cf(Cf::RaftLog), rocksdb::IteratorMode::Start)
            .collect();
        assert!(
            log.is_empty(),
            "raft starts with its first log id applied and purged (members added later get a \
             raft snapshot), no entries left: {} found",
            log.len()
        );
    }

    #[test]
    fn failures_leave_no_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let good = snapshot_file(dir.path());
        let bytes = std::fs::read(&good).unwrap();

        let damaged = dir.path().join("damaged.db");
        let mut copy = bytes.clone();
        copy[5000] ^= 1;
        std::fs::write(&damaged, &copy).unwrap();
        let truncated = dir.path().join("truncated.db");
        std::fs::write(&truncated, &bytes[..bytes.len() - 32 - 4096]).unwrap();

        for (file, skip, expect) in [
            (damaged.clone(), false, "expected sha256"),
            (truncated.clone(), false, "missing hash"),
            (truncated, true, "truncated"),
            (dir.path().join("absent.db"), false, "absent.db"),
        ] {
            let mut cfg = config(dir.path(), file);
            cfg.skip_hash_check = skip;
            let err = restore(&cfg).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
            assert!(!cfg.data_dir.exists(), "no data dir after {err}");
        }

        // An existing empty data dir (a mounted volume) stays, empty, after a failure.
        let mut cfg = config(dir.path(), damaged);
        std::fs::create_dir(&cfg.data_dir).unwrap();
        assert!(restore(&cfg).is_err());
        assert_eq!(std::fs::read_dir(&cfg.data_dir).unwrap().count(), 0);

        // ...and is used by a good restore, even with a stale staging dir in it.
        std::fs::create_dir(cfg.data_dir.join(STAGING_DIR)).unwrap();
        std::fs::File::create(cfg.data_dir.join(STAGING_DIR).join("junk"))
            .unwrap()
            .write_all(b"x")
            .unwrap();
        cfg.snapshot = good;
        restore(&cfg).unwrap();
        // A second restore into the now populated data dir is refused.
        let err = restore(&cfg).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
    }

    #[test]
    fn flags_are_checked_as_etcd_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), snapshot_file(dir.path()));
        cfg.name = "other".into();
        let err = restore(&cfg).unwrap_err().to_string();
        assert!(err.contains("couldn't find local name \"other\""), "{err}");
        cfg.name = "m1".into();
        cfg.peer_urls = vec!["http://127.0.0.1:9".into()];
        let err = restore(&cfg).unwrap_err().to_string();
        assert!(err.contains("--initial-advertise-peer-urls"), "{err}");
        assert!(!cfg.data_dir.exists());
    }
}
