//! The files of an etcd member's raft log, as far as a v2 migration needs them: the
//! snapshot file (`member/snap/*.snap`), the write-ahead log's record framing
//! (`member/wal/*.wal`) and the messages inside (raft entries, hard state, etcd's v2
//! `Request`). Message shapes follow etcd's published `snappb`, `walpb`, `raftpb` and
//! `etcdserverpb` field numbers; only the fields read here are declared.

use crate::snapshot_file::crc32c::Crc32c;

/// `snappb.Snapshot`: a raft snapshot with the CRC-32C of its bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapFile {
    /// CRC-32C (Castagnoli) of `data`.
    #[prost(uint32, tag = "1")]
    pub crc: u32,
    /// A `raftpb.Snapshot`.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// `raftpb.Snapshot`: the state machine's bytes (for etcd, the v2 store as JSON) and
/// where in the log it stands.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftSnapshot {
    /// etcd's v2 store, `store.Save()`'s JSON.
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    /// Its log position.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<SnapshotMetadata>,
}

/// `raftpb.SnapshotMetadata` (the configuration is not needed).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotMetadata {
    /// The last log index the snapshot includes.
    #[prost(uint64, tag = "2")]
    pub index: u64,
    /// Its term.
    #[prost(uint64, tag = "3")]
    pub term: u64,
}

/// `walpb.Record`: one framed WAL record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WalRecord {
    /// What `data` holds (see the `RECORD_*` constants).
    #[prost(int64, tag = "1")]
    pub kind: i64,
    /// The running CRC-32C of every record's data so far (for a CRC record: the value
    /// carried over from the previous file).
    #[prost(uint32, tag = "2")]
    pub crc: u32,
    /// The payload.
    #[prost(bytes = "vec", tag = "3")]
    pub data: Vec<u8>,
}

/// A WAL record holding a `raftpb.Entry`.
pub const RECORD_ENTRY: i64 = 2;
/// A WAL record holding a `raftpb.HardState`.
pub const RECORD_STATE: i64 = 3;
/// A WAL record carrying the CRC over from the previous file.
pub const RECORD_CRC: i64 = 4;

/// `raftpb.Entry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftEntry {
    /// 0: a normal entry; 1 and 2: configuration changes.
    #[prost(int32, tag = "1")]
    pub kind: i32,
    /// Its term.
    #[prost(uint64, tag = "2")]
    pub term: u64,
    /// Its log index.
    #[prost(uint64, tag = "3")]
    pub index: u64,
    /// What etcd proposed: a v2 `Request`, or an `InternalRaftRequest`.
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// `raftpb.HardState`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HardState {
    /// The current term.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// The highest log index known committed.
    #[prost(uint64, tag = "3")]
    pub commit: u64,
}

/// `etcdserverpb.Request`: a v2 request as etcd replicates it. Strings are read as bytes:
/// values need not be UTF-8 on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct V2Request {
    /// `PUT`, `POST`, `DELETE`, `QGET`, `GET`, `HEAD`, `SYNC`.
    #[prost(bytes = "vec", tag = "2")]
    pub method: Vec<u8>,
    /// The path, with the store prefix (`/1/...` for keys).
    #[prost(bytes = "vec", tag = "3")]
    pub path: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "4")]
    pub val: Vec<u8>,
    /// A directory.
    #[prost(bool, tag = "5")]
    pub dir: bool,
    /// `prevValue`.
    #[prost(bytes = "vec", tag = "6")]
    pub prev_value: Vec<u8>,
    /// `prevIndex`.
    #[prost(uint64, tag = "7")]
    pub prev_index: u64,
    /// `prevExist`, when given.
    #[prost(bool, optional, tag = "8")]
    pub prev_exist: Option<bool>,
    /// Expiry, unix nanoseconds (0: none).
    #[prost(int64, tag = "9")]
    pub expiration: i64,
    /// `recursive`.
    #[prost(bool, tag = "12")]
    pub recursive: bool,
    /// The leader's clock of a `SYNC`, unix nanoseconds.
    #[prost(int64, tag = "15")]
    pub time: i64,
    /// `refresh`.
    #[prost(bool, tag = "17")]
    pub refresh: bool,
}

/// `etcdserverpb.InternalRaftRequest`, only for the v2 request it may wrap.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalRaftRequest {
    /// A wrapped v2 request.
    #[prost(message, optional, tag = "2")]
    pub v2: Option<V2Request>,
}

/// The v2 methods a `Request` can carry: what tells one apart from an `InternalRaftRequest`
/// that happens to decode as one.
const V2_METHODS: [&[u8]; 7] = [b"PUT", b"POST", b"DELETE", b"QGET", b"GET", b"HEAD", b"SYNC"];

/// The v2 request a normal entry carries, if it is one (etcd 3.4 proposes v2 requests bare,
/// v3 requests as `InternalRaftRequest`s; this reads both the way etcd's apply does).
pub fn v2_request(entry_data: &[u8]) -> Option<V2Request> {
    use prost::Message;
    if let Ok(req) = V2Request::decode(entry_data) {
        if V2_METHODS.contains(&req.method.as_slice()) {
            return Some(req);
        }
    }
    InternalRaftRequest::decode(entry_data).ok()?.v2
}

/// Splits a WAL file's bytes into records, checking etcd's running CRC (`crc` carries it
/// from one file to the next). Stops at the preallocated zeros after the last record; a
/// record cut short at the end is reported through `torn` (a crash mid-write, which etcd
/// repairs by dropping it), anything else malformed is an error.
pub fn wal_records(bytes: &[u8], crc: &mut u32, torn: &mut bool) -> Result<Vec<WalRecord>, String> {
    use prost::Message;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&bytes[at..at + 8]);
        let field = i64::from_le_bytes(len_bytes);
        if field == 0 {
            break;
        }
        // The low 56 bits are the record's length; a set sign bit says the top byte's low
        // three bits give the padding after it (records are 8-byte aligned).
        let len = (field as u64 & 0x00ff_ffff_ffff_ffff) as usize;
        let pad = if field < 0 { ((field as u64 >> 56) & 0x7) as usize } else { 0 };
        let start = at + 8;
        let Some(end) = start.checked_add(len).filter(|e| *e <= bytes.len()) else {
            *torn = true;
            break;
        };
        let rec = match WalRecord::decode(&bytes[start..end]) {
            Ok(rec) => rec,
            Err(e) => {
                // A record of zeros or garbage at the tail: the write never finished.
                if bytes[end..].iter().all(|b| *b == 0) {
                    *torn = true;
                    break;
                }
                return Err(format!("record at byte {at}: {e}"));
            }
        };
        if rec.kind == RECORD_CRC {
            if *crc != 0 && rec.crc != *crc {
                return Err(format!(
                    "record at byte {at}: CRC {:#x} carried over, {:#x} expected",
                    rec.crc, *crc
                ));
            }
            *crc = rec.crc;
        } else {
            let mut running = Crc32c::resume(*crc);
            running.update(&rec.data);
            let sum = running.finish();
            if rec.crc != sum {
                if bytes[end + pad.min(bytes.len() - end)..].iter().all(|b| *b == 0) {
                    *torn = true;
                    break;
                }
                return Err(format!("record at byte {at}: CRC mismatch (the WAL is corrupt)"));
            }
            *crc = sum;
        }
        out.push(rec);
        at = end + pad;
    }
    Ok(out)
}
