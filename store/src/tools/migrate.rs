//! `oxcd migrate`: v2 → v3 migration (see `crate::migrate`). Today: from a live etcd v2
//! cluster (`--from-v2-endpoint`); oxcd's own v2 store (`--data-dir`, online `--endpoints`
//! alone) waits for oxcd's v2 API.

use std::ffi::OsString;

use clap::Parser;

use super::fail;
use crate::migrate::from_v2::{copy, follow, FromV2};
use crate::migrate::writer::V3Writer;

/// `oxcd migrate`.
#[derive(Parser, Debug)]
#[command(name = "oxcd migrate", about = "Converts v2 keys into v3 keys")]
struct MigrateCli {
    /// A live etcd v2 API to copy from (`http://host:port`, etcd with `--enable-v2`).
    #[arg(long)]
    from_v2_endpoint: Option<String>,
    /// The v3 member to write into (`host:port` or a URL).
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// Keep applying the v2 tree's changes after the copy, until SIGINT or SIGTERM.
    #[arg(long)]
    follow: bool,
    /// Write TTL'd keys without leases.
    #[arg(long)]
    no_ttl: bool,
    /// Replace v3 keys that already exist (otherwise the migration refuses to start).
    #[arg(long)]
    overwrite: bool,
    /// A stopped member's data dir to convert offline.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

/// Runs `oxcd migrate ...` (`args[0]` is `migrate`); returns the exit code.
pub async fn run(args: &[OsString]) -> i32 {
    let cli = match MigrateCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let Some(source) = cli.from_v2_endpoint.clone() else {
        return fail(
            "oxcd has no v2 store of its own yet: migrate from a live etcd v2 cluster with \
             --from-v2-endpoint URL",
        );
    };
    if cli.data_dir.is_some() {
        return fail("--data-dir and --from-v2-endpoint exclude each other");
    }
    let cfg = FromV2 {
        source: source.trim_end_matches('/').to_string(),
        no_ttl: cli.no_ttl,
        overwrite: cli.overwrite,
    };
    let mut writer = match V3Writer::connect(&cli.endpoints, cli.no_ttl).await {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let copied = match copy(&cfg, &mut writer, cfg.overwrite).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    println!(
        "migrated {} keys ({} with a TTL, in {} leases) from {} at v2 index {} into {} (revision {})",
        copied.written.keys,
        copied.written.with_ttl,
        copied.written.leases,
        cfg.source,
        copied.v2_index,
        cli.endpoints,
        copied.written.revision
    );
    if !cli.follow {
        return 0;
    }
    println!("following changes from v2 index {}; stop with Ctrl-C", copied.v2_index + 1);
    let mut report = |line: &str| println!("{line}");
    match follow(&cfg, &mut writer, copied, stop_signal(), &mut report).await {
        Ok(()) => {
            println!("stopped");
            0
        }
        Err(e) => fail(e),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
