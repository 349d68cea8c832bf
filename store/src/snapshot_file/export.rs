//! The snapshot file `etcdctl snapshot save` receives from Maintenance.Snapshot: the applied
//! state laid out as etcd 3.5's bbolt backend (written by `crate::snapshot_file::bbolt_writer`), so that etcd's own
//! tools (`etcdutl snapshot status`, `etcdutl snapshot restore`) and a real etcd started on a
//! restored data dir read it. Maintenance.Snapshot appends etcd's SHA-256 trailer.
//!
//! The buckets, all present even when empty (etcd creates them at start-up):
//! - `key`: revision `main BE ‖ '_' ‖ sub BE`, plus `'t'` for a tombstone → `mvccpb.KeyValue`
//!   (a tombstone's value carries only the key, as etcd writes it);
//! - `meta`: `consistent_index` and `term` (the applied raft log id), `confState` (JSON),
//!   `scheduledCompactRev`/`finishedCompactRev` (revision form) once compacted;
//! - `lease`: lease id (8 bytes BE) → `leasepb.Lease {ID, TTL}`;
//! - `alarm`: `etcdserverpb.AlarmMember` → empty;
//! - `cluster`: `clusterVersion`;
//! - `members`: member id in hex → JSON; `members_removed` (oxcd keeps no such list);
//! - `auth` (`authEnabled` once set, `authRevision`), `authUsers`, `authRoles`: name →
//!   `authpb.User` / `authpb.Role`, as oxcd stores them.
//!
//! Everything is read from one RocksDB snapshot, so the file is one consistent state.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::lease::LeaseRecord;
use crate::mvcc::Revision;
use crate::pb::etcdserverpb::AlarmMember;
use crate::pb::mvccpb::KeyValue;
use crate::pb::oxcdpb::MemberAttributes;
use crate::raft::{decode, LogId, StoredMembership};
use crate::snapshot_file::bbolt_writer::DbWriter;
use crate::storage::schema::{auth_keys, meta_keys};
use crate::storage::{Cf, Storage};
use crate::version::CLUSTER_VERSION;

/// etcd's `leasepb.Lease`, the value type of its `lease` bucket.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LeasePb {
    #[prost(int64, tag = "1")]
    pub(crate) id: i64,
    #[prost(int64, tag = "2")]
    pub(crate) ttl: i64,
    #[prost(int64, tag = "3")]
    pub(crate) remaining_ttl: i64,
}

/// etcd's `membership.Member` as JSON in its `members` bucket.
#[derive(Serialize)]
struct MemberJson<'a> {
    id: u64,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner", skip_serializing_if = "is_false")]
    is_learner: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(rename = "clientURLs", skip_serializing_if = "<[String]>::is_empty")]
    client_urls: &'a [String],
}

/// raft's `ConfState` as JSON under `meta/confState`.
#[derive(Serialize)]
struct ConfStateJson {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    voters: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    learners: Vec<u64>,
    auto_leave: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Writes the snapshot to an unnamed file beside the database (created, then unlinked at
/// once, so nothing is left behind whatever happens to the stream); returns it rewound to
/// its start, and its size.
pub fn write_temp(storage: &Storage) -> Result<(std::fs::File, u64)> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let io = |e: std::io::Error| Error::internal("write snapshot", e);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let path = storage.dir().with_extension(format!("snapshot.{}.{n}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io)?;
    std::fs::remove_file(&path).map_err(io)?;
    let (out, size) = write(storage, BufWriter::new(file))?;
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok((file, size))
}

/// Writes the applied state as an etcd backend file to `out` (empty, at its start); returns
/// `out` and the file's size.
pub fn write<W: Write + Seek>(storage: &Storage, out: W) -> Result<(W, u64)> {
    let snap = storage.db().snapshot();
    let rows = |cf: Cf| snap.iterator_cf(storage.cf(cf), rocksdb::IteratorMode::Start);
    let meta = |key: &[u8]| snap.get_cf(storage.cf(Cf::Meta), key);
    let io = |e: std::io::Error| Error::internal("write snapshot", e);

    let applied: Option<LogId> = match meta(meta_keys::APPLIED)? {
        Some(b) => decode(&b).map_err(|e| Error::internal("decode applied", e))?,
        None => None,
    };
    let membership: StoredMembership = match meta(meta_keys::MEMBERSHIP)? {
        Some(b) => decode(&b).map_err(|e| Error::internal("decode membership", e))?,
        None => StoredMembership::default(),
    };
    let compacted = meta(meta_keys::COMPACTED)?.map(|b| be_i64(&b)).transpose()?.unwrap_or(0);
    let alarms: Vec<(u64, i32)> = match meta(meta_keys::ALARMS)? {
        Some(b) => bincode::deserialize(&b).map_err(|e| Error::internal("decode alarms", e))?,
        None => Vec::new(),
    };

    let mut db = DbWriter::new(out).map_err(io)?;

    let alarm_keys: BTreeSet<Vec<u8>> = alarms
        .into_iter()
        .map(|(member_id, alarm)| AlarmMember { member_id, alarm }.encode_to_vec())
        .collect();
    write_bucket(&mut db, "alarm", alarm_keys.into_iter().map(|k| (k, Vec::new())))?;

    let mut auth = BTreeMap::new();
    let mut users = BTreeMap::new();
    let mut roles = BTreeMap::new();
    auth.insert(b"authRevision".to_vec(), 1u64.to_be_bytes().to_vec());
    for item in rows(Cf::Auth) {
        let (key, value) = item?;
        if *key == *auth_keys::ENABLED {
            auth.insert(b"authEnabled".to_vec(), value.into_vec());
        } else if *key == *auth_keys::REVISION {
            auth.insert(b"authRevision".to_vec(), value.into_vec());
        } else if let Some(name) = key.strip_prefix(auth_keys::USER_PREFIX) {
            users.insert(name.to_vec(), value.into_vec());
        } else if let Some(name) = key.strip_prefix(auth_keys::ROLE_PREFIX) {
            roles.insert(name.to_vec(), value.into_vec());
        }
    }
    write_bucket(&mut db, "auth", auth)?;
    write_bucket(&mut db, "authRoles", roles)?;
    write_bucket(&mut db, "authUsers", users)?;

    let version = [(b"clusterVersion".to_vec(), CLUSTER_VERSION.as_bytes().to_vec())];
    write_bucket(&mut db, "cluster", version)?;

    let mut bucket = db.bucket(b"key").map_err(io)?;
    for item in rows(Cf::Kv) {
        let (key, value) = item?;
        let rev = Revision::from_bytes(&key)
            .ok_or_else(|| Error::Internal(format!("bad revision key of {} bytes", key.len())))?;
        let kv = KeyValue::decode(value.as_ref()).map_err(|e| Error::internal("decode kv", e))?;
        let mut etcd_key = revision_key(rev);
        if kv.version == 0 {
            etcd_key.push(b't');
            let tombstone = KeyValue { key: kv.key, ..Default::default() };
            bucket.put(etcd_key, tombstone.encode_to_vec()).map_err(io)?;
        } else {
            bucket.put(etcd_key, value).map_err(io)?;
        }
    }
    bucket.finish().map_err(io)?;

    let mut bucket = db.bucket(b"lease").map_err(io)?;
    for item in rows(Cf::Lease) {
        let (_, value) = item?;
        let rec: LeaseRecord =
            bincode::deserialize(&value).map_err(|e| Error::internal("decode lease", e))?;
        let lease = LeasePb { id: rec.id, ttl: rec.ttl, remaining_ttl: 0 };
        bucket.put(rec.id.to_be_bytes(), lease.encode_to_vec()).map_err(io)?;
    }
    bucket.finish().map_err(io)?;

    // Members as `member list` shows them: raft's nodes joined with their attributes.
    let mut attrs = BTreeMap::new();
    for item in rows(Cf::Members) {
        let (_, value) = item?;
        let a = MemberAttributes::decode(value.as_ref())
            .map_err(|e| Error::internal("decode member", e))?;
        attrs.insert(a.id, a);
    }
    let config = membership.membership();
    let raft_learners: BTreeSet<u64> = config.learner_ids().collect();
    let mut members = BTreeMap::new();
    let mut conf = ConfStateJson { voters: Vec::new(), learners: Vec::new(), auto_leave: false };
    for (id, node) in config.nodes() {
        let a = attrs.get(id);
        let pending_voter = a.is_some_and(|a| a.pending_voter);
        let is_learner = raft_learners.contains(id) && !pending_voter;
        let node_urls = [node.addr.clone()];
        let peer_urls = match a {
            Some(a) if !a.peer_urls.is_empty() => a.peer_urls.as_slice(),
            _ => &node_urls,
        };
        let json = serde_json::to_vec(&MemberJson {
            id: *id,
            peer_urls,
            is_learner,
            name: a.map(|a| a.name.as_str()).unwrap_or_default(),
            client_urls: a.map(|a| a.client_urls.as_slice()).unwrap_or_default(),
        })
        .map_err(|e| Error::internal("encode member", e))?;
        members.insert(format!("{id:x}").into_bytes(), json);
        if is_learner { &mut conf.learners } else { &mut conf.voters }.push(*id);
    }
    write_bucket(&mut db, "members", members)?;
    write_bucket(&mut db, "members_removed", BTreeMap::new())?;

    let mut meta = BTreeMap::new();
    if !conf.voters.is_empty() || !conf.learners.is_empty() {
        let json =
            serde_json::to_vec(&conf).map_err(|e| Error::internal("encode conf state", e))?;
        meta.insert(b"confState".to_vec(), json);
    }
    let (index, term) = applied.map(|l| (l.index, l.leader_id.term)).unwrap_or((0, 0));
    meta.insert(b"consistent_index".to_vec(), index.to_be_bytes().to_vec());
    meta.insert(b"term".to_vec(), term.to_be_bytes().to_vec());
    if compacted > 0 {
        let rev = revision_key(Revision::new(compacted, 0));
        meta.insert(b"scheduledCompactRev".to_vec(), rev.clone());
        meta.insert(b"finishedCompactRev".to_vec(), rev);
    }
    write_bucket(&mut db, "meta", meta)?;

    db.finish().map_err(io)
}

/// etcd's revision key: main and sub, big-endian, joined by `'_'`.
fn revision_key(rev: Revision) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.extend_from_slice(&rev.main.to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&rev.sub.to_be_bytes());
    key
}

fn write_bucket<W: Write + Seek>(
    db: &mut DbWriter<W>,
    name: &str,
    items: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::internal("write snapshot", e);
    let mut bucket = db.bucket(name.as_bytes()).map_err(io)?;
    for (k, v) in items {
        bucket.put(k, v).map_err(io)?;
    }
    bucket.finish().map_err(io)
}

fn be_i64(bytes: &[u8]) -> Result<i64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| Error::Internal("bad i64 in meta".into()))?;
    Ok(i64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Cursor;

    use openraft::{BasicNode, CommittedLeaderId, Membership};

    use super::*;
    use crate::raft::encode;
    use crate::snapshot_file::bbolt_writer::tests::{read, Buckets};

    fn kv(key: &str, rev: i64, version: i64, value: &str) -> KeyValue {
        let create = if version == 0 { 0 } else { rev };
        KeyValue {
            key: key.into(),
            create_revision: create,
            mod_revision: rev,
            version,
            value: value.into(),
            lease: 0,
        }
    }

    #[test]
    fn state_becomes_etcd_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db")).unwrap();
        let db = storage.db();
        let put = |cf: Cf, k: &[u8], v: &[u8]| db.put_cf(storage.cf(cf), k, v).unwrap();

        let put_kv = kv("a", 2, 1, "x");
        put(Cf::Kv, &Revision::new(2, 0).to_bytes(), &put_kv.encode_to_vec());
        // oxcd's tombstone carries the deleting revision; etcd's only the key.
        put(Cf::Kv, &Revision::new(3, 0).to_bytes(), &kv("a", 3, 0, "").encode_to_vec());
        let log_id = LogId::new(CommittedLeaderId::new(3, 1), 9);
        put(Cf::Meta, meta_keys::APPLIED, &encode(&Some(log_id)).unwrap());
        let nodes = BTreeMap::from([
            (1, BasicNode::new("http://n1:2380")),
            (2, BasicNode::new("http://n2:2380")),
        ]);
        let config = Membership::new(vec![BTreeSet::from([1])], nodes);
        let membership = StoredMembership::new(Some(log_id), config);
        put(Cf::Meta, meta_keys::MEMBERSHIP, &encode(&membership).unwrap());
        put(Cf::Meta, meta_keys::COMPACTED, &2i64.to_be_bytes());
        put(Cf::Meta, meta_keys::ALARMS, &bincode::serialize(&vec![(1u64, 1i32)]).unwrap());
        let lease = LeaseRecord { id: 7, ttl: 60 };
        put(Cf::Lease, &7i64.to_be_bytes(), &bincode::serialize(&lease).unwrap());
        let attrs = MemberAttributes {
            id: 1,
            name: "n1".into(),
            peer_urls: vec!["http://n1:2380".into()],
            client_urls: vec!["http://n1:2379".into()],
            pending_voter: false,
        };
        put(Cf::Members, &1u64.to_be_bytes(), &attrs.encode_to_vec());
        put(Cf::Auth, auth_keys::ENABLED, &[1]);
        put(Cf::Auth, auth_keys::REVISION, &5u64.to_be_bytes());
        put(Cf::Auth, b"user/alice", b"user-pb");
        put(Cf::Auth, b"role/root", b"role-pb");

        let (out, size) = write(&storage, Cursor::new(Vec::new())).unwrap();
        let file = out.into_inner();
        assert_eq!(file.len() as u64, size);
        let (buckets, _) = read(&file);

        let rev = |main: i64, tomb: bool| {
            let mut k = revision_key(Revision::new(main, 0));
            k.extend(tomb.then_some(b't'));
            k
        };
        let b = |s: &str| s.as_bytes().to_vec();
        let alarm = AlarmMember { member_id: 1, alarm: 1 }.encode_to_vec();
        let tombstone = KeyValue { key: b("a"), ..Default::default() }.encode_to_vec();
        let lease = LeasePb { id: 7, ttl: 60, remaining_ttl: 0 }.encode_to_vec();
        let n1 =
            r#"{"id":1,"peerURLs":["http://n1:2380"],"name":"n1","clientURLs":["http://n1:2379"]}"#;
        let n2 = r#"{"id":2,"peerURLs":["http://n2:2380"],"isLearner":true}"#;
        let conf = r#"{"voters":[1],"learners":[2],"auto_leave":false}"#;
        let expected: Buckets = [
            ("alarm", vec![(alarm, vec![])]),
            (
                "auth",
                vec![(b("authEnabled"), vec![1]), (b("authRevision"), 5u64.to_be_bytes().to_vec())],
            ),
            ("authRoles", vec![(b("root"), b("role-pb"))]),
            ("authUsers", vec![(b("alice"), b("user-pb"))]),
            ("cluster", vec![(b("clusterVersion"), b("3.5.0"))]),
            ("key", vec![(rev(2, false), put_kv.encode_to_vec()), (rev(3, true), tombstone)]),
            ("lease", vec![(7i64.to_be_bytes().to_vec(), lease)]),
            ("members", vec![(b("1"), b(n1)), (b("2"), b(n2))]),
            ("members_removed", vec![]),
            (
                "meta",
                vec![
                    (b("confState"), b(conf)),
                    (b("consistent_index"), 9u64.to_be_bytes().to_vec()),
                    (b("finishedCompactRev"), rev(2, false)),
                    (b("scheduledCompactRev"), rev(2, false)),
                    (b("term"), 3u64.to_be_bytes().to_vec()),
                ],
            ),
        ]
        .into_iter()
        .map(|(name, items)| (b(name), items))
        .collect();
        assert_eq!(buckets, expected);
    }

    #[test]
    fn an_empty_store_still_has_every_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db")).unwrap();
        let (file, size) = write_temp(&storage).unwrap();
        assert_eq!(file.metadata().unwrap().len(), size);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("snapshot"))
            .collect();
        assert!(leftovers.is_empty(), "the temporary file is unlinked");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).unwrap();
        let (buckets, _) = read(&bytes);
        let names: Vec<&[u8]> = buckets.keys().map(|k| k.as_slice()).collect();
        let expected: [&[u8]; 10] = [
            b"alarm",
            b"auth",
            b"authRoles",
            b"authUsers",
            b"cluster",
            b"key",
            b"lease",
            b"members",
            b"members_removed",
            b"meta",
        ];
        assert_eq!(names, expected);
        assert_eq!(
            buckets[b"auth".as_slice()],
            vec![(b"authRevision".to_vec(), 1u64.to_be_bytes().to_vec())]
        );
    }
}
