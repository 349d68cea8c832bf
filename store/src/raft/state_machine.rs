//! openraft's state machine over `apply::Applier`, plus snapshots of the applied state.
//!
//! A snapshot is every row of the state column families (`Cf::STATE`), read from one RocksDB
//! snapshot, bincode-encoded. Installing one replaces those families and reloads every
//! in-memory view (index, leases, members, applied id).

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{RaftSnapshotBuilder, SnapshotMeta};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::{decode, encode, Entry, LogId, Response, StorageError, StoredMembership, TypeConfig};
use crate::apply::Applier;
use crate::cluster::ClusterState;
use crate::error::{Error, Result};
use crate::lease::Lessor;
use crate::mvcc::MvccStore;
use crate::storage::{Cf, Storage};

/// Every row of the applied state, as shipped to a member that fell behind the log.
#[derive(Serialize, Deserialize)]
pub struct StateDump {
    /// (index into `Cf::STATE`, key, value)
    pub rows: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

/// The raft state machine of a member.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    applier: Arc<Applier>,
    mvcc: Arc<MvccStore>,
    lessor: Arc<Lessor>,
    cluster: Arc<ClusterState>,
    /// The newest snapshot's metadata; its bytes live in `snapshot_path()`, not in memory.
    current: Mutex<Option<SnapshotMeta<u64, openraft::BasicNode>>>,
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

    /// Where the newest raft snapshot is kept, beside the database.
    fn snapshot_path(&self) -> std::path::PathBuf {
        self.inner.storage.dir().with_extension("snap")
    }

    /// Keeps a snapshot's bytes on disk (write to a temporary name, fsync, rename) and its
    /// metadata in memory.
    fn keep(&self, meta: &SnapshotMeta<u64, openraft::BasicNode>, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let path = self.snapshot_path();
        let tmp = path.with_extension("snap.part");
        let mut file =
            std::fs::File::create(&tmp).map_err(|e| Error::internal("write snapshot", e))?;
        file.write_all(bytes).map_err(|e| Error::internal("write snapshot", e))?;
        file.sync_all().map_err(|e| Error::internal("sync snapshot", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::internal("rename snapshot", e))?;
        *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(meta.clone());
        Ok(())
    }

    /// Dumps the applied state consistently, for a member that fell behind the log.
    pub fn dump(&self) -> Result<(Vec<u8>, Option<LogId>, StoredMembership)> {
        dump_state(&self.inner.storage, &self.inner.applier)
    }

    fn install(&self, bytes: &[u8]) -> Result<()> {
        let dump: StateDump = decode(bytes).map_err(|e| Error::internal("decode snapshot", e))?;
        let storage = &self.inner.storage;
        let db = storage.db();
        let mut batch = WriteBatch::default();
        for cf in Cf::STATE {
            for item in db.iterator_cf(storage.cf(*cf), rocksdb::IteratorMode::Start) {
                let (key, _) = item?;
                batch.delete_cf(storage.cf(*cf), key);
            }
        }
        for (cf, key, value) in dump.rows {
            let cf = Cf::STATE
                .get(cf as usize)
                .ok_or_else(|| Error::Internal("bad snapshot cf".into()))?;
            batch.put_cf(storage.cf(*cf), key, value);
        }
        let mut opts = rocksdb::WriteOptions::default();
        // Synced: raft may purge its log up to this snapshot right after install returns.
        opts.set_sync(true);
        db.write_opt(batch, &opts)?;
        self.inner.mvcc.reload()?;
        self.inner.lessor.reload(self.inner.mvcc.leased_keys())?;
        self.inner.cluster.reload()?;
        self.inner.applier.reload()?;
        self.inner.applier.auth().reload()?;
        Ok(())
    }
}

/// Reads every state row from one consistent RocksDB snapshot.
pub fn dump_state(
    storage: &Storage,
    applier: &Applier,
) -> Result<(Vec<u8>, Option<LogId>, StoredMembership)> {
    let _ = applier;
    let snap = storage.db().snapshot();
    // The applied id is read from the same snapshot as the data, so they always agree.
    let meta = storage.cf(Cf::Meta);
    let applied: Option<LogId> =
        match snap.get_cf(meta, crate::storage::schema::meta_keys::APPLIED)? {
            Some(b) => decode(&b).map_err(|e| Error::internal("decode applied", e))?,
            None => None,
        };
    let membership: StoredMembership =
        match snap.get_cf(meta, crate::storage::schema::meta_keys::MEMBERSHIP)? {
            Some(b) => decode(&b).map_err(|e| Error::internal("decode membership", e))?,
            None => StoredMembership::default(),
        };
    let mut rows = Vec::new();
    for (i, cf) in Cf::STATE.iter().enumerate() {
        for item in snap.iterator_cf(storage.cf(*cf), rocksdb::IteratorMode::Start) {
            let (key, value) = item?;
            rows.push((i as u8, key.to_vec(), value.to_vec()));
        }
    }
    let bytes = encode(&StateDump { rows }).map_err(|e| Error::internal("encode snapshot", e))?;
    Ok((bytes, applied, membership))
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
        let (bytes, applied, membership) = tokio::task::spawn_blocking(move || {
            // The log may be purged up to this snapshot: make the applied state durable.
            this.inner.storage.sync_wal()?;
            this.dump()
        })
        .await
        .map_err(|e| sm_err(&e))?
        .map_err(|e| sm_err(&e))?;
        let snapshot_id = match applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "0-0-0".to_string(),
        };
        let meta = SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id };
        self.keep(&meta, &bytes).map_err(|e| sm_err(&e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let this = self.clone();
        let last_log_id = meta.last_log_id;
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            this.install(&bytes)?;
            this.keep(&meta, &bytes)
        })
        .await
        .map_err(|e| sm_err(&e))?
        .map_err(|e| sm_err(&e))?;
        tracing::info!(?last_log_id, "installed a raft snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.inner.current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(meta) = current else { return Ok(None) };
        let bytes = std::fs::read(self.snapshot_path()).map_err(|e| sm_err(&e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}
