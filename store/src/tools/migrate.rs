//! `oxcd migrate`: v2 → v3 migration (see `crate::migrate`): from a live etcd v2 cluster
//! (`--from-v2-endpoint`), of a stopped oxcd member's own v2 store (`--data-dir`), or online
//! on a running oxcd cluster (`--endpoints` alone: one replicated operation).

use std::ffi::OsString;

use clap::Parser;

use super::fail;
use crate::migrate::etcd_dir;
use crate::migrate::from_v2::{copy, follow, FromV2};
use crate::migrate::writer::V3Writer;
use crate::v2::convert::{ConvertOptions, Converted};

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
    /// A stopped member's data dir: oxcd's is converted in place; etcd's (3.4/3.5 with the
    /// v2 store) is read and written into the member at --endpoints.
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
    let opts = ConvertOptions { no_ttl: cli.no_ttl, overwrite: cli.overwrite };
    let Some(source) = cli.from_v2_endpoint.clone() else {
        return match &cli.data_dir {
            Some(dir) if etcd_dir::is_etcd_data_dir(dir) => {
                from_etcd_data_dir(dir, &cli.endpoints, opts).await
            }
            Some(dir) => match crate::migrate::offline::convert_data_dir(dir, opts) {
                Ok(done) => {
                    report(&done, &format!("in {}", dir.display()));
                    0
                }
                Err(e) => fail(e),
            },
            None => online(&cli.endpoints, opts).await,
        };
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

/// `--data-dir` naming a stopped etcd member's data dir: its v2 store read from etcd's
/// snapshot and WAL (see `migrate::etcd_dir`) and written into the v3 member at `endpoints`.
async fn from_etcd_data_dir(dir: &std::path::Path, endpoints: &str, opts: ConvertOptions) -> i32 {
    let store = match etcd_dir::read(dir, crate::v2::event::now_ns()) {
        Ok(store) => store,
        Err(e) => return fail(e),
    };
    if store.torn_tail {
        println!("the WAL ends in a record cut short (a crash mid-write): left out, as etcd does");
    }
    let mut writer = match V3Writer::connect(endpoints, opts.no_ttl).await {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let written = match writer.put_all(&store.keys, opts.overwrite).await {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    for key in &store.keys {
        println!("{}", String::from_utf8_lossy(&key.key));
    }
    println!(
        "migrated {} keys ({} with a TTL, in {} leases) from etcd data dir {} at v2 index {} \
         (snapshot at raft index {}, {} v2 writes replayed from the WAL) into {} (revision {})",
        written.keys,
        written.with_ttl,
        written.leases,
        dir.display(),
        store.v2_index,
        store.snapshot_index,
        store.replayed,
        endpoints,
        written.revision
    );
    0
}

/// Prints what a conversion of oxcd's own v2 store did: each key, then a summary.
fn report(done: &Converted, place: &str) {
    for (key, lease) in &done.written {
        if *lease == 0 {
            println!("{key}");
        } else {
            println!("{key} (lease {lease:x})");
        }
    }
    let with_ttl = done.written.iter().filter(|(_, l)| *l != 0).count();
    println!(
        "converted {} v2 keys into v3 keys ({} with a TTL, in {} leases; {} already converted) {} at revision {}",
        done.written.len(),
        with_ttl,
        done.leases,
        done.unchanged,
        place,
        done.revision
    );
}

/// The online migration: one replicated operation on the member at `endpoint`.
async fn online(endpoint: &str, opts: ConvertOptions) -> i32 {
    let base = if endpoint.contains("://") {
        endpoint.trim_end_matches('/').to_string()
    } else {
        format!("http://{endpoint}")
    };
    let mut path = crate::v2_api::admin::MIGRATE_PATH.to_string();
    let mut query = Vec::new();
    if opts.overwrite {
        query.push("overwrite=true");
    }
    if opts.no_ttl {
        query.push("no_ttl=true");
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let resp =
        match crate::migrate::http::post(&base, &path, std::time::Duration::from_secs(60)).await {
            Ok(r) => r,
            Err(e) => return fail(format!("{base}: {e}")),
        };
    if resp.status == 200 {
        match serde_json::from_slice::<Converted>(&resp.body) {
            Ok(done) => {
                report(&done, &format!("on {base}"));
                0
            }
            Err(e) => fail(format!("{base}: unreadable answer: {e}")),
        }
    } else {
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let msg = v["error"].as_str().map(str::to_string).unwrap_or_else(|| {
            format!("HTTP {}: {}", resp.status, String::from_utf8_lossy(&resp.body).trim())
        });
        fail(msg)
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
