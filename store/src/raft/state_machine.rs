//! openraft's state machine over `apply::Applier`, plus snapshots of the applied state.
//!
//! A raft snapshot is a file of every row of the state column families (`transfer.rs`),
//! written from one RocksDB snapshot and streamed to followers in openraft's chunks; nothing
//! holds the whole state in memory. Installing one replaces those families and reloads every
//! in-memory view (index, leases, members, applied id, watchers).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{RaftSnapshotBuilder, SnapshotMeta};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{decode, transfer, Entry, LogId, Response, StorageError, StoredMembership, TypeConfig};
use crate::apply::Applier;
use crate::cluster::ClusterState;
use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::mvcc::MvccStore;
use crate::storage::{Cf, Storage};

/// The raft state machine of a member.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

/// The newest snapshot: its metadata and the file holding it.
type Current = (SnapshotMeta<u64, openraft::BasicNode>, PathBuf);

struct Inner {
    storage: Storage,
    applier: Arc<Applier>,
    mvcc: Arc<MvccStore>,
    lessor: Arc<Lessor>,
    cluster: Arc<ClusterState>,
    /// The newest snapshot; its bytes live in a file beside the database, never in memory.
    current: Mutex<Option<Current>>,
}

impl StateMachine {
    /// The state machine over the member's stores.
    pub fn new(
        storage: Storage,
        applier: Arc<Applier>,
        mvcc: Arc<MvccStore>,
        lessor: Arc<Lessor>,
        cluster: Arc<ClusterState>,
    ) -> StateMachine {
        remove_stale_snapshots(&storage);
        StateMachine {
            inner: Arc::new(Inner {
                storage,
                applier,
                mvcc,
                lessor,
                cluster,
                current: Mutex::new(None),
            }),
        }
    }

    /// Where a snapshot file named `name` is kept, beside the database.
    fn snapshot_path(&self, name: &str) -> PathBuf {
        self.inner.storage.dir().with_extension(format!("snap-{name}"))
    }

    /// Makes `meta`'s file at `path` the current snapshot and removes the previous file.
    fn set_current(&self, meta: SnapshotMeta<u64, openraft::BasicNode>, path: PathBuf) {
        let old = self
            .inner
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace((meta, path.clone()));
        if let Some((_, old_path)) = old {
            if old_path != path {
                // An open reader (a transfer in progress) keeps its handle to the old file.
                let _ = std::fs::remove_file(old_path);
            }
        }
    }

    /// Writes the applied state to a new snapshot file, consistently; returns its metadata.
    fn build(&self) -> Result<(SnapshotMeta<u64, openraft::BasicNode>, PathBuf)> {
        let storage = &self.inner.storage;
        // The log may be purged up to this snapshot: make the applied state durable.
        storage.sync_wal()?;
        let snap = storage.db().snapshot();
        // The applied id is read from the same snapshot as the data, so they always agree.
        let meta_cf = storage.cf(Cf::Meta);
        let applied: Option<LogId> =
            match snap.get_cf(meta_cf, crate::storage::schema::meta_keys::APPLIED)? {
                Some(b) => decode(&b).map_err(|e| Error::internal("decode applied", e))?,
                None => None,
            };
        let membership: StoredMembership =
            match snap.get_cf(meta_cf, crate::storage::schema::meta_keys::MEMBERSHIP)? {
                Some(b) => decode(&b).map_err(|e| Error::internal("decode membership", e))?,
                None => StoredMembership::default(),
            };
        let snapshot_id = match applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "0-0-0".to_string(),
        };
        let path = self.snapshot_path(&snapshot_id);
        let part = path.with_extension("part");
        transfer::write(storage, &snap, &part)?;
        std::fs::rename(&part, &path).map_err(|e| Error::internal("rename raft snapshot", e))?;
        let meta = SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id };
        Ok((meta, path))
    }

    fn install(&self, path: &std::path::Path) -> Result<()> {
        transfer::install(&self.inner.storage, path)?;
        self.inner.mvcc.reload()?;
        self.inner.lessor.reload(self.inner.mvcc.leased_keys())?;
        self.inner.cluster.reload()?;
        self.inner.applier.reload()?;
        self.inner.applier.auth().reload()?;
        Ok(())
    }

    /// Where a snapshot being received is written until it is installed.
    fn receiving_path(&self) -> PathBuf {
        self.inner.storage.dir().with_extension("snap-receiving")
    }
}

/// Snapshot files of an earlier run: nothing refers to them once the member restarted
/// (openraft builds a new snapshot when it needs one; an interrupted install was finished by
/// `transfer::recover` before this).
fn remove_stale_snapshots(storage: &Storage) {
    let dir = storage.dir();
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else { return };
    let prefix = format!("{}.snap-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn sm_err(e: &dyn std::fmt::Display) -> StorageError {
    openraft::StorageIOError::new(
        openraft::ErrorSubject::StateMachine,
        openraft::ErrorVerb::Write,
        openraft::AnyError::error(e.to_string()),
    )
    .into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let this = self.clone();
        let _timer = crate::metrics::SNAP_SAVE_TOTAL.start_timer();
        let (meta, path) = tokio::task::spawn_blocking(move || this.build())
            .await
            .map_err(|e| sm_err(&e))?
            .map_err(|e| sm_err(&e))?;
        let file = tokio::fs::File::open(&path).await.map_err(|e| sm_err(&e))?;
        self.set_current(meta.clone(), path);
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.inner.applier.applied_state())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // Applied on openraft's state-machine task itself: apply writes RocksDB unsynced (a
        // memtable insert and a WAL append, microseconds), cheaper than a hop to a blocking
        // thread and back, which dominated a single client's write latency.
        self.inner.applier.apply(entries)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        // Read as well as written: `install_snapshot` reads it back.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.receiving_path())
            .await
            .map_err(|e| sm_err(&e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        // Copied (streamed) to the snapshot's own file, durable before the install starts:
        // a restart mid-install installs it again. The data may come from any file, not only
        // one `begin_receiving_snapshot` made.
        let _inflight =
            crate::metrics::InFlight::start(&crate::metrics::SNAPSHOT_APPLY_IN_PROGRESS);
        let save_timer = crate::metrics::SNAP_DB_SAVE_TOTAL.start_timer();
        let path = self.snapshot_path(&meta.snapshot_id);
        let mut snapshot = snapshot;
        snapshot.flush().await.map_err(|e| sm_err(&e))?;
        snapshot.seek(std::io::SeekFrom::Start(0)).await.map_err(|e| sm_err(&e))?;
        // Written beside and renamed over, in case the data is read from `path` itself.
        let part = path.with_extension("part");
        let mut kept = tokio::fs::File::create(&part).await.map_err(|e| sm_err(&e))?;
        tokio::io::copy(&mut *snapshot, &mut kept).await.map_err(|e| sm_err(&e))?;
        kept.flush().await.map_err(|e| sm_err(&e))?;
        let fsync_timer = crate::metrics::SNAP_DB_FSYNC.start_timer();
        kept.sync_all().await.map_err(|e| sm_err(&e))?;
        fsync_timer.observe_duration();
        drop((snapshot, kept));
        tokio::fs::rename(&part, &path).await.map_err(|e| sm_err(&e))?;
        save_timer.observe_duration();
        let _ = tokio::fs::remove_file(self.receiving_path()).await;
        let this = self.clone();
        let installed = path.clone();
        tokio::task::spawn_blocking(move || this.install(&installed))
            .await
            .map_err(|e| sm_err(&e))?
            .map_err(|e| sm_err(&e))?;
        self.set_current(meta.clone(), path);
        tracing::info!(last_log_id = ?meta.last_log_id, "installed a raft snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        // Opened under the lock, so `set_current` cannot remove the file in between.
        let current = self.inner.current.lock().unwrap_or_else(|e| e.into_inner());
        let Some((meta, path)) = current.as_ref() else { return Ok(None) };
        let file = std::fs::File::open(path).map_err(|e| sm_err(&e))?;
        let meta = meta.clone();
        drop(current);
        Ok(Some(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) }))
    }
}
