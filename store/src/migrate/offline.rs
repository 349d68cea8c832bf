//! `oxcd migrate --data-dir DIR`: the v2 store of a stopped oxcd member converted into v3
//! keys in its own data dir (`v2_store::convert`, one revision), as `etcdctl migrate` did.
//!
//! Run it on every member of a stopped cluster (each converts the same v2 store the same
//! way), or on one member and let the others catch up through raft after the restart.

use std::path::Path;

use super::MigrateError;
use crate::lease::Lessor;
use crate::mvcc::MvccStore;
use crate::storage::Storage;
use crate::v2::convert::{convert, ConvertOptions, Converted};
use crate::v2::event::now_ns;
use crate::v2::V2Store;

/// Converts the v2 store under `data_dir` (the member's `--data-dir`).
pub fn convert_data_dir(data_dir: &Path, opts: ConvertOptions) -> Result<Converted, MigrateError> {
    let db = data_dir.join("member").join("db");
    let fail = |message: String| MigrateError::Config(format!("{}: {message}", data_dir.display()));
    if !db.join("CURRENT").exists() {
        return Err(fail("not an oxcd data dir (no member/db)".into()));
    }
    let storage = Storage::open(&db)
        .map_err(|e| fail(format!("cannot open (is the member still running?): {e}")))?;
    let internal = |e: crate::Error| fail(e.to_string());
    let mvcc = MvccStore::open(storage.clone()).map_err(internal)?;
    let lessor = Lessor::open(storage.clone(), 1, mvcc.leased_keys()).map_err(internal)?;
    let v2 = V2Store::open(storage.clone()).map_err(internal)?;
    let keys = v2.keys();
    let mut writer = mvcc.writer();
    let (done, _moves) =
        match convert(&mut writer, &lessor, &keys, now_ns(), opts).map_err(internal)? {
            Ok(done) => done,
            Err(refused) => {
                return Err(MigrateError::WouldOverwrite {
                    count: refused.count,
                    examples: refused.examples,
                })
            }
        };
    writer.commit().map_err(internal)?;
    storage.sync_wal().map_err(internal)?;
    Ok(done)
}
