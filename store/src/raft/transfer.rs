//! Raft state transfer: the applied state as a file, written and installed as a stream.
//!
//! A member that fell behind the leader's log gets the leader's applied state (every row of
//! `Cf::STATE`). It travels as a file, never as one in-memory buffer: the leader writes it
//! row by row from one RocksDB snapshot, openraft sends it in `snapshot_max_chunk_size`
//! chunks, the follower writes the chunks to a file and installs from it in bounded write
//! batches. (This is not etcd's bbolt snapshot file of `etcdctl snapshot save`, which lives
//! in `crate::snapshot_file::export`.)
//!
//! Format: the magic `OXCDRAFTSNAP1\n`, then one record per row — the family's index in
//! `Cf::STATE` (one byte), the key's and the value's length (u32 little-endian each) and
//! bytes — then an end mark (`0xff`) and the CRC-32 of everything before it.
//!
//! An install replaces the state in several batches, so it is made crash-safe with a marker:
//! the received file is first kept durably, a synced marker says "installing", and only
//! after the last batch is synced is the marker removed. A member that restarts with the
//! marker set installs the kept file again before it opens anything else (`recover`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rocksdb::WriteBatch;

use crate::error::{Error, Result};
use crate::storage::{Cf, Storage};

const MAGIC: &[u8] = b"OXCDRAFTSNAP1\n";
const END: u8 = 0xff;

/// Rows are installed in write batches of about this many bytes, bounding install memory.
const INSTALL_BATCH_BYTES: usize = 16 << 20;

/// The marker key in `Cf::RaftMeta` (not part of the state, so an install never deletes it)
/// naming the file an unfinished install was installing.
const INSTALLING: &[u8] = b"installing_snapshot";

/// Writes every state row visible in `snap` to `path` (synced), returning its size.
pub fn write(storage: &Storage, snap: &rocksdb::Snapshot<'_>, path: &Path) -> Result<u64> {
    let io = |e: std::io::Error| Error::internal("write raft snapshot", e);
    let mut out = CrcWriter::new(BufWriter::new(File::create(path).map_err(io)?));
    out.write_all(MAGIC).map_err(io)?;
    for (i, cf) in Cf::STATE.iter().enumerate() {
        for item in snap.iterator_cf(storage.cf(*cf), rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            out.write_all(&[i as u8]).map_err(io)?;
            write_bytes(&mut out, &key).map_err(io)?;
            write_bytes(&mut out, &value).map_err(io)?;
        }
    }
    out.write_all(&[END]).map_err(io)?;
    let (mut inner, crc, len) = out.finish();
    inner.write_all(&crc.to_le_bytes()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(len + 4)
}

/// Installs the state in the file at `path`, replacing every state row, crash-safely (see
/// the module doc). The caller reloads the in-memory views afterwards.
pub fn install(storage: &Storage, path: &Path) -> Result<()> {
    // Check the whole file before touching the state: a truncated or corrupt transfer must
    // leave the member as it was.
    verify(path)?;
    let db = storage.db();
    let raft_meta = storage.cf(Cf::RaftMeta);
    let marker = path.to_string_lossy().as_bytes().to_vec();
    let mut synced = rocksdb::WriteOptions::default();
    synced.set_sync(true);
    db.put_cf_opt(raft_meta, INSTALLING, &marker, &synced)?;
    replace_state(storage, path)?;
    // Synced: raft may purge its log up to this snapshot right after install returns.
    db.delete_cf_opt(raft_meta, INSTALLING, &synced)?;
    Ok(())
}

/// Finishes an install a crash interrupted, before anything reads the state.
pub fn recover(storage: &Storage) -> Result<()> {
    let Some(marker) = storage.db().get_cf(storage.cf(Cf::RaftMeta), INSTALLING)? else {
        return Ok(());
    };
    let path = PathBuf::from(String::from_utf8_lossy(&marker).into_owned());
    tracing::warn!(path = %path.display(), "finishing a raft snapshot install a restart interrupted");
    install(storage, &path)
}

fn replace_state(storage: &Storage, path: &Path) -> Result<()> {
    let db = storage.db();
    let mut batch = WriteBatch::default();
    for cf in Cf::STATE {
        let handle = storage.cf(*cf);
        for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
            let (key, _) = item?;
            batch.delete_cf(handle, key);
            flush_if_full(storage, &mut batch)?;
        }
    }
    let mut rows = Reader::open(path)?;
    while let Some((cf, key, value)) = rows.next_row()? {
        batch.put_cf(storage.cf(cf), key, value);
        flush_if_full(storage, &mut batch)?;
    }
    db.write(batch)?;
    storage.sync_wal()
}

fn flush_if_full(storage: &Storage, batch: &mut WriteBatch) -> Result<()> {
    if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
        storage.db().write(std::mem::take(batch))?;
    }
    Ok(())
}

/// Reads the whole file and checks its framing and checksum.
fn verify(path: &Path) -> Result<()> {
    let mut rows = Reader::open(path)?;
    while rows.next_row()?.is_some() {}
    Ok(())
}

/// One state row: its family, key and value.
type Row = (Cf, Vec<u8>, Vec<u8>);

/// Reads the rows of a snapshot file in order, checking the checksum at the end.
struct Reader {
    input: CrcReader<BufReader<File>>,
    done: bool,
}

impl Reader {
    fn open(path: &Path) -> Result<Reader> {
        let file = File::open(path).map_err(|e| Error::internal("open raft snapshot", e))?;
        let mut input = CrcReader::new(BufReader::new(file));
        let mut magic = [0u8; MAGIC.len()];
        input.read_exact(&mut magic).map_err(corrupt)?;
        if magic != MAGIC {
            return Err(Error::Internal("raft snapshot: not an oxcd state transfer file".into()));
        }
        Ok(Reader { input, done: false })
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.input.read_exact(&mut tag).map_err(corrupt)?;
        if tag[0] == END {
            let expected = self.input.crc();
            let mut crc = [0u8; 4];
            self.input.inner.read_exact(&mut crc).map_err(corrupt)?;
            if u32::from_le_bytes(crc) != expected {
                return Err(Error::Internal("raft snapshot: checksum mismatch".into()));
            }
            self.done = true;
            return Ok(None);
        }
        let cf = Cf::STATE
            .get(usize::from(tag[0]))
            .copied()
            .ok_or_else(|| Error::Internal(format!("raft snapshot: bad family {}", tag[0])))?;
        let key = read_bytes(&mut self.input)?;
        let value = read_bytes(&mut self.input)?;
        Ok(Some((cf, key, value)))
    }
}

fn corrupt(e: std::io::Error) -> Error {
    Error::internal("raft snapshot: truncated or unreadable", e)
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len =
        u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("a row larger than 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

fn read_bytes(input: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(corrupt)?;
    let len = u32::from_le_bytes(len) as usize;
    let mut bytes = Vec::new();
    // `take` + `read_to_end` grows the buffer as bytes arrive, so a corrupt length cannot
    // allocate gigabytes up front.
    input.take(len as u64).read_to_end(&mut bytes).map_err(corrupt)?;
    if bytes.len() != len {
        return Err(Error::Internal("raft snapshot: truncated row".into()));
    }
    Ok(bytes)
}

/// A writer that checksums and counts what passes through it.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> CrcWriter<W> {
    fn new(inner: W) -> Self {
        CrcWriter { inner, crc: crc32fast::Hasher::new(), len: 0 }
    }

    fn finish(self) -> (W, u32, u64) {
        (self.inner, self.crc.finalize(), self.len)
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that checksums what passes through it.
struct CrcReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> CrcReader<R> {
    fn new(inner: R) -> Self {
        CrcReader { inner, crc: crc32fast::Hasher::new() }
    }

    fn crc(&self) -> u32 {
        self.crc.clone().finalize()
    }
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(storage: &Storage) -> Vec<(usize, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, cf) in Cf::STATE.iter().enumerate() {
            for item in storage.db().iterator_cf(storage.cf(*cf), rocksdb::IteratorMode::Start) {
                let (k, v) = item.expect("row");
                out.push((i, k.to_vec(), v.to_vec()));
            }
        }
        out
    }

    #[test]
    fn a_state_round_trips_and_replaces_the_old_one() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let from = Storage::open(&dir.path().join("from")).expect("storage");
        let to = Storage::open(&dir.path().join("to")).expect("storage");
        for i in 0..1000u32 {
            from.db().put_cf(from.cf(Cf::Kv), i.to_be_bytes(), vec![b'v'; 100]).expect("put");
        }
        from.db().put_cf(from.cf(Cf::Meta), b"applied", b"x").expect("put");
        to.db().put_cf(to.cf(Cf::Kv), b"stale", b"gone").expect("put");
        to.db().put_cf(to.cf(Cf::RaftLog), b"log", b"kept").expect("put");
        let path = dir.path().join("state.snap");
        let size = write(&from, &from.db().snapshot(), &path).expect("write");
        assert_eq!(size, std::fs::metadata(&path).expect("meta").len());
        install(&to, &path).expect("install");
        assert_eq!(rows(&from), rows(&to));
        let log = to.db().get_cf(to.cf(Cf::RaftLog), b"log").expect("get");
        assert_eq!(log.as_deref(), Some(&b"kept"[..]), "the raft log is not state");
        assert!(recover(&to).is_ok(), "nothing to recover after a finished install");
    }

    #[test]
    fn a_corrupt_file_is_refused_before_anything_changes() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let from = Storage::open(&dir.path().join("from")).expect("storage");
        let to = Storage::open(&dir.path().join("to")).expect("storage");
        from.db().put_cf(from.cf(Cf::Kv), b"k", b"v").expect("put");
        to.db().put_cf(to.cf(Cf::Kv), b"mine", b"kept").expect("put");
        let path = dir.path().join("state.snap");
        write(&from, &from.db().snapshot(), &path).expect("write");
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("corrupt");
        assert!(install(&to, &path).is_err());
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        assert!(install(&to, &path).is_err());
        let kept = to.db().get_cf(to.cf(Cf::Kv), b"mine").expect("get");
        assert_eq!(kept.as_deref(), Some(&b"kept"[..]));
    }

    #[test]
    fn an_interrupted_install_is_finished_on_recovery() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let from = Storage::open(&dir.path().join("from")).expect("storage");
        let to = Storage::open(&dir.path().join("to")).expect("storage");
        from.db().put_cf(from.cf(Cf::Kv), b"k", b"v").expect("put");
        let path = dir.path().join("state.snap");
        write(&from, &from.db().snapshot(), &path).expect("write");
        // As if the member died after setting the marker and deleting part of its state.
        let marker = path.to_string_lossy().as_bytes().to_vec();
        to.db().put_cf(to.cf(Cf::RaftMeta), INSTALLING, marker).expect("marker");
        to.db().put_cf(to.cf(Cf::Kv), b"half", b"installed").expect("put");
        recover(&to).expect("recover");
        assert_eq!(rows(&from), rows(&to));
        assert!(to.db().get_cf(to.cf(Cf::RaftMeta), INSTALLING).expect("get").is_none());
    }
}
