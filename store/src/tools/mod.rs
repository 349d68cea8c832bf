//! oxcd's offline and client-side tools, run as `oxcd <tool> ...` instead of a member:
//! `oxcd snapshot save|status|restore` (etcdutl's and etcdctl's snapshot commands, same flags
//! and outputs) and `oxcd migrate` (v2 → v3). `main` hands the arguments here before parsing member flags.

pub mod migrate;
pub mod snapshot;

use std::ffi::OsString;

/// Runs the tool named by `args[1]`, if it names one; returns the process exit code, or
/// `None` when the arguments are a member's flags.
pub async fn dispatch(args: &[OsString]) -> Option<i32> {
    match args.get(1).and_then(|a| a.to_str()) {
        Some("snapshot") => Some(snapshot::run(&args[1..]).await),
        Some("migrate") => Some(migrate::run(&args[1..]).await),
        _ => None,
    }
}

/// Prints an error as etcdutl and etcdctl do and returns their exit code.
pub fn fail(err: impl std::fmt::Display) -> i32 {
    eprintln!("Error: {err}");
    1
}
