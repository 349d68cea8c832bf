//! RocksDB: the one database a member keeps, and the only module that opens it.
//!
//! The raft log, raft metadata and the applied state share one database (and so one WAL): a
//! synced raft-log append also makes every earlier unsynced state-machine write durable.

pub mod memory;
pub mod schema;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::error::{Error, Result};
pub use schema::Cf;

/// Size of the block cache shared by all column families.
const BLOCK_CACHE_BYTES: usize = 32 << 20;

/// Bytes RocksDB holds in memory, by kind (see `Storage::memory_usage`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryUsage {
    /// Memtables of every column family (active and not yet flushed).
    pub memtables: u64,
    /// Index and filter blocks of open SST files kept outside the block cache.
    pub table_readers: u64,
    /// The shared block cache's current usage.
    pub block_cache: u64,
}

/// A cheap handle on the member's database.
#[derive(Clone)]
pub struct Storage {
    db: Arc<DB>,
    dir: std::path::PathBuf,
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
        // One block cache shared by every column family bounds read-path memory as a whole.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let descriptors = Cf::ALL.iter().map(|cf| {
            let mut cf_opts = Options::default();
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            cf_opts.set_block_based_table_factory(&table);
            cf_opts.set_write_buffer_size(cf.write_buffer_size());
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, dir, descriptors)?;
        Ok(Storage { db: Arc::new(db), dir: dir.to_path_buf() })
    }

    /// The directory the database lives in (snapshot files are kept beside it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The raw database, for the modules that own a column family.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// A column family handle; every family is created by `open`, so absence is a bug.
    pub fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(cf.name()).expect("column family created by Storage::open")
    }

    /// Bytes the database occupies on disk (SST files, WAL, manifest), reported as etcd's
    /// "DB SIZE" (etcd reports its bbolt file's size).
    pub fn size_bytes(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".sst")
                    || name.ends_with(".log") && name != "LOG"
                    || name.starts_with("MANIFEST")
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Bytes of the applied state (SST files and memtables of `Cf::STATE`): what etcd's
    /// backend quota counts. The raft log is left out, as etcd leaves out its WAL, so that
    /// compacting and defragmenting really frees quota (the log is only trimmed by snapshots).
    pub fn state_size_bytes(&self) -> u64 {
        self.property_sum(Cf::STATE, "rocksdb.total-sst-files-size")
            + self.property_sum(Cf::STATE, "rocksdb.size-all-mem-tables")
    }

    /// Bytes of live data in the applied state: RocksDB's estimate of the SST data still
    /// referenced, plus the memtables (etcd's "in use", as opposed to the file size).
    pub fn live_data_bytes(&self) -> u64 {
        self.property_sum(Cf::STATE, "rocksdb.estimate-live-data-size")
            + self.property_sum(Cf::STATE, "rocksdb.size-all-mem-tables")
    }

    /// Memory RocksDB holds outside our own structures, by kind, for the memory gauges: a
    /// long soak must show these bounded, since they are invisible in any Rust-side count.
    pub fn memory_usage(&self) -> MemoryUsage {
        MemoryUsage {
            memtables: self.property_sum(Cf::ALL, "rocksdb.cur-size-all-mem-tables"),
            table_readers: self.property_sum(Cf::ALL, "rocksdb.estimate-table-readers-mem"),
            // Every family of ours shares one block cache, so one of them answers for all
            // (the default family, which we never use, has a cache of its own).
            block_cache: self.property_sum(&[Cf::Kv], "rocksdb.block-cache-usage"),
        }
    }

    /// An integer RocksDB property summed over `cfs` (a family that cannot say counts 0).
    fn property_sum(&self, cfs: &[Cf], property: &str) -> u64 {
        cfs.iter()
            .filter_map(|cf| self.db.property_int_value_cf(self.cf(*cf), property).ok().flatten())
            .sum()
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
