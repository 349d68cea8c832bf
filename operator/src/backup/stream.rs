//! Snapshots in and out of a bucket as streams.
//!
//! [`upload_snapshot`] asks one member for Maintenance.Snapshot and writes each chunk to a
//! multipart upload as it arrives (at most a few parts in memory); the stream's own SHA-256
//! trailer (the last 32 bytes hash everything before them, as etcd writes it) is checked on
//! the way and the upload is aborted, never completed, when it does not match, so a stored
//! object is always a whole snapshot. [`download`] streams an object into a file, checking the
//! SHA-256 of the whole file when one is expected.

use std::io::Write;
use std::path::Path as FsPath;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use super::{BackupError, Result};

/// Length of the SHA-256 trailer of a snapshot stream.
const TRAILER: usize = 32;
/// Size of one uploaded part (S3 wants at least 5 MiB for all parts but the last).
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once: the memory bound of an upload is about this many parts.
const PARTS_IN_FLIGHT: usize = 2;
/// Time to connect to a member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the next chunk of a stream.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A snapshot that was stored (also the result a snapshot Job's pod reports, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stored {
    /// Bytes stored (trailer included).
    pub size: u64,
    /// SHA-256 of the stored bytes, lowercase hex (what `sha256sum` prints).
    pub sha256: String,
    /// The member's revision when it started sending the snapshot.
    pub revision: i64,
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the SHA-256 trailer of a snapshot stream while the stream passes through.
#[derive(Default)]
pub struct TrailerCheck {
    body: Sha256,
    whole: Sha256,
    tail: Vec<u8>,
    size: u64,
}

impl TrailerCheck {
    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.whole.update(chunk);
        self.size += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > TRAILER {
            let keep = self.tail.len() - TRAILER;
            self.body.update(&self.tail[..keep]);
            self.tail.drain(..keep);
        }
    }

    /// Size and SHA-256 (hex) of everything fed, if the last 32 bytes are the SHA-256 of
    /// everything before them.
    pub fn finish(self) -> std::result::Result<(u64, String), String> {
        let body: [u8; 32] = self.body.finalize().into();
        if self.tail.len() != TRAILER || body[..] != self.tail[..] {
            return Err(format!(
                "the snapshot stream ({} bytes) does not match its sha256 trailer",
                self.size
            ));
        }
        Ok((self.size, hex(&self.whole.finalize())))
    }
}

/// A member's Maintenance.Snapshot stream, chunk by chunk, each within [`IDLE_TIMEOUT`].
struct SnapshotSource {
    endpoint: String,
    // Kept: the stream lives on its channel.
    _client: Client,
    stream: etcd_client::SnapshotStreaming,
}

impl SnapshotSource {
    async fn open(endpoint: &str) -> Result<SnapshotSource> {
        let opts = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
        let mut client =
            tokio::time::timeout(CONNECT_TIMEOUT * 2, Client::connect([endpoint], Some(opts)))
                .await
                .map_err(|_| timeout(endpoint, "connect"))?
                .map_err(|e| etcd_error(endpoint, e))?;
        let stream = tokio::time::timeout(IDLE_TIMEOUT, client.snapshot())
            .await
            .map_err(|_| timeout(endpoint, "first response"))?
            .map_err(|e| etcd_error(endpoint, e))?;
        Ok(SnapshotSource { endpoint: endpoint.into(), _client: client, stream })
    }

    /// The next chunk and the revision its header carries; `None` at the end.
    async fn next(&mut self) -> Result<Option<(Vec<u8>, i64)>> {
        let next = tokio::time::timeout(IDLE_TIMEOUT, self.stream.message())
            .await
            .map_err(|_| timeout(&self.endpoint, "next chunk"))?
            .map_err(|e| etcd_error(&self.endpoint, e))?;
        Ok(next.map(|msg| {
            let revision = msg.header().map(|h| h.revision()).unwrap_or(0);
            (msg.blob().to_vec(), revision)
        }))
    }
}

fn etcd_error(endpoint: &str, source: etcd_client::Error) -> BackupError {
    BackupError::Etcd { endpoint: endpoint.into(), source: Box::new(source) }
}

fn timeout(endpoint: &str, what: &str) -> BackupError {
    BackupError::Timeout(format!("snapshot from {endpoint}: {what}"))
}

fn io_error(path: &FsPath) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.display().to_string();
    move |source| BackupError::Io { path, source }
}

/// Streams the snapshot of the member at `endpoint` into the file `to`, as a Job's pod does
/// for a PersistentVolumeClaim destination: written as `<to>.part`, its trailer checked on the
/// way, synced, read back and hashed again (what is on the volume is what was sent), then
/// renamed, with `<to>.sha256` beside it in `sha256sum` format. Never held whole in memory; a
/// failure leaves no file.
pub async fn save_snapshot(endpoint: &str, to: &FsPath) -> Result<Stored> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let part = to.with_extension("db.part");
    let result = async {
        let mut source = SnapshotSource::open(endpoint).await?;
        let mut file = std::fs::File::create(&part).map_err(io_error(&part))?;
        let mut check = TrailerCheck::default();
        let mut revision = 0;
        while let Some((chunk, rev)) = source.next().await? {
            if revision == 0 {
                revision = rev;
            }
            check.update(&chunk);
            file.write_all(&chunk).map_err(io_error(&part))?;
        }
        let (size, sha256) = check.finish().map_err(BackupError::Corrupt)?;
        file.sync_all().map_err(io_error(&part))?;
        drop(file);
        let (on_disk, disk_sha) = hash_file(&part)?;
        if on_disk != size || disk_sha != sha256 {
            return Err(BackupError::Corrupt(format!(
                "{}: {on_disk} bytes with sha256 {disk_sha} on the volume, {size} bytes with \
                 sha256 {sha256} sent",
                part.display()
            )));
        }
        std::fs::rename(&part, to).map_err(io_error(to))?;
        let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let sums = sha256_file(to);
        std::fs::write(&sums, format!("{sha256}  {name}\n")).map_err(io_error(&sums))?;
        if let Some(dir) = to.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
        }
        Ok(Stored { size, sha256, revision })
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// `<file>.sha256`, the checksum file written beside a snapshot file.
pub fn sha256_file(file: &FsPath) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sha256");
    name.into()
}

/// Size and SHA-256 (hex) of a file, read in chunks.
pub fn hash_file(path: &FsPath) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(io_error(path))?;
    let mut hash = Sha256::new();
    let size = std::io::copy(&mut f, &mut hash).map_err(io_error(path))?;
    Ok((size, hex(&hash.finalize())))
}

/// Copies the file `from` into `to` (as `<to>.part`, renamed when whole), checking the SHA-256
/// of what was copied against `expected_sha256` when given; the restore's path for a file on a
/// volume. Returns the size and the SHA-256 (hex).
pub fn copy_checked(
    from: &FsPath,
    to: &FsPath,
    expected_sha256: Option<&str>,
) -> Result<(u64, String)> {
    let part = to.with_extension("part");
    let result = (|| {
        let mut src = std::fs::File::open(from).map_err(io_error(from))?;
        let dst = std::fs::File::create(&part).map_err(io_error(&part))?;
        let mut out = HashingWriter { inner: dst, hash: Sha256::new() };
        let size = std::io::copy(&mut src, &mut out).map_err(io_error(from))?;
        let got = hex(&out.hash.finalize());
        if let Some(want) = expected_sha256 {
            if !got.eq_ignore_ascii_case(want.trim()) {
                return Err(BackupError::Corrupt(format!(
                    "{}: sha256 is {got}, expected {want} ({size} bytes)",
                    from.display()
                )));
            }
        }
        out.inner.sync_all().map_err(io_error(&part))?;
        std::fs::rename(&part, to).map_err(io_error(to))?;
        Ok((size, got))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// Writes through to a file and hashes what it writes.
struct HashingWriter {
    inner: std::fs::File,
    hash: Sha256,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams the snapshot of the member at `endpoint` into `key` of `store`.
pub async fn upload_snapshot(
    endpoint: &str,
    store: &dyn ObjectStore,
    key: &Path,
) -> Result<Stored> {
    let mut source = SnapshotSource::open(endpoint).await?;
    let upload = store.put_multipart(key).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut check = TrailerCheck::default();
    let mut revision = 0;
    let received: Result<()> = async {
        while let Some((chunk, rev)) = source.next().await? {
            if revision == 0 {
                revision = rev;
            }
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.write(&chunk);
            check.update(&chunk);
        }
        Ok(())
    }
    .await;
    let checked = received.and_then(|()| check.finish().map_err(BackupError::Corrupt));
    match checked {
        Ok((size, sha256)) => {
            writer.finish().await?;
            Ok(Stored { size, sha256, revision })
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, key = %key, "aborting the upload");
            }
            Err(e)
        }
    }
}

/// Streams object `key` into the file `to` (written as `<to>.part`, renamed when whole);
/// checks the whole file's SHA-256 against `expected_sha256` when given. Returns the size and
/// the SHA-256 (hex).
pub async fn download(
    store: &dyn ObjectStore,
    key: &Path,
    to: &FsPath,
    expected_sha256: Option<&str>,
) -> Result<(u64, String)> {
    let io = |path: &FsPath| {
        let path = path.display().to_string();
        move |source| BackupError::Io { path, source }
    };
    let part = to.with_extension("part");
    let mut file = std::fs::File::create(&part).map_err(io(&part))?;
    let result: Result<(u64, String)> = async {
        let mut body = store.get(key).await?.into_stream();
        let mut hash = Sha256::new();
        let mut size = 0u64;
        loop {
            let next = tokio::time::timeout(IDLE_TIMEOUT, body.next())
                .await
                .map_err(|_| BackupError::Timeout(format!("reading {key}")))?;
            let Some(chunk) = next else { break };
            let chunk = chunk?;
            hash.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).map_err(io(&part))?;
        }
        let got = hex(&hash.finalize());
        if let Some(want) = expected_sha256 {
            if !got.eq_ignore_ascii_case(want.trim()) {
                return Err(BackupError::Corrupt(format!(
                    "{key}: sha256 is {got}, expected {want} ({size} bytes)"
                )));
            }
        }
        file.sync_all().map_err(io(&part))?;
        std::fs::rename(&part, to).map_err(io(to))?;
        Ok((size, got))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_trailer(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&Sha256::digest(body));
        v
    }

    #[test]
    fn trailer_check_across_any_chunking() {
        let data = with_trailer(&(0..10_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        for chunk in [1, 7, 31, 32, 33, 4096, data.len()] {
            let mut c = TrailerCheck::default();
            data.chunks(chunk).for_each(|p| c.update(p));
            let (size, sha) = c.finish().expect("valid");
            assert_eq!(size, data.len() as u64);
            assert_eq!(sha, hex(&Sha256::digest(&data)));
        }
    }

    #[test]
    fn trailer_check_refuses_corruption_and_truncation() {
        let mut data = with_trailer(b"hello snapshot");
        data[3] ^= 1;
        let mut c = TrailerCheck::default();
        c.update(&data);
        assert!(c.finish().unwrap_err().contains("does not match its sha256 trailer"));
        let mut c = TrailerCheck::default();
        c.update(&[0u8; 10]);
        assert!(c.finish().is_err());
    }
}
