//! RocksDB: the one database a member keeps, and the only module that opens it.
//!
//! The raft log, raft metadata and the applied state share one database (and so one WAL): a
//! synced raft-log append also makes every earlier unsynced state-machine write durable.

pub mod schema;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::error::{Error, Result};
pub use schema::Cf;

/// A cheap handle on the member's database.
#[derive(Clone)]
pub struct Storage {
    db: Arc<DB>,
}

impl Storage {
    /// Opens (or creates) the database under `dir`, with every column family in `schema`.
    pub fn open(dir: &Path) -> Result<Storage> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(&format!("create {}", dir.display()), e))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        // Small memtables keep RSS low; etcd's bbolt keeps everything in its mmap instead.
        opts.set_write_buffer_size(16 << 20);
        opts.set_max_total_wal_size(64 << 20);
        opts.set_keep_log_file_num(2);
        let descriptors = Cf::ALL.iter().map(|cf| {
            let mut cf_opts = Options::default();
            cf_opts.set_write_buffer_size(cf.write_buffer_size());
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, dir, descriptors)?;
        Ok(Storage { db: Arc::new(db) })
    }

    /// The raw database, for the modules that own a column family.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// A column family handle; every family is created by `open`, so absence is a bug.
    pub fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(cf.name()).expect("column family created by Storage::open")
    }

    /// Total on-disk size of the live SST files and memtables, reported as etcd's "DB SIZE".
    pub fn size_bytes(&self) -> u64 {
        let mut total = 0u64;
        for cf in Cf::ALL {
            let handle = self.cf(*cf);
            for prop in ["rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"] {
                if let Ok(Some(v)) = self.db.property_int_value_cf(handle, prop) {
                    total += v;
                }
            }
        }
        total
    }

    /// Compacts every column family, reclaiming space of deleted revisions (etcd's defrag).
    pub fn compact_all(&self) {
        for cf in Cf::ALL {
            self.db.compact_range_cf(self.cf(*cf), None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// Forces the WAL to disk; used before anything relies on unsynced applied state.
    pub fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }
}
