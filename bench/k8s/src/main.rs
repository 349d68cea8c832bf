//! `oxcd-k8s-bench`: the same object load through kube-apiserver on etcd 3.6 and on oxcd, one
//! after the other on the same machine, with the test rig's control plane (`oxcd-k8s-rig`:
//! kube-apiserver v1.36.3 on one store member, no controller manager).
//!
//! Measured per store: creates/s with several requests in flight and their latency, the
//! latency of listing every object (in one request and in pages), the delay from a create to
//! its watch event, and the store process's CPU time and RSS (from `/proc`). Prints a
//! markdown table (`--out` also writes it to a file); bench/RESULTS.md holds the last one.

mod load;
mod proc_stats;
mod stats;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};

use crate::stats::Samples;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "kube-apiserver on etcd 3.6 vs on oxcd: the same object load")]
struct Args {
    /// ConfigMaps created (and then listed).
    #[arg(long, default_value_t = 5000)]
    objects: usize,
    /// Bytes of data in each ConfigMap.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How many times every object is listed (each way: one request, pages).
    #[arg(long, default_value_t = 20)]
    lists: usize,
    /// Page size of the paginated lists (limit/continue).
    #[arg(long, default_value_t = 500)]
    page: u32,
    /// Objects created one at a time while a watch measures their delivery.
    #[arg(long, default_value_t = 200)]
    watch_events: usize,
    /// Which store: both (etcd 3.6 first), etcd or oxcd.
    #[arg(long, default_value = "both")]
    only: String,
    /// Extra kube-apiserver flag (repeatable), e.g. --apiserver-arg=--watch-cache=false.
    #[arg(long)]
    apiserver_arg: Vec<String>,
    /// Also write the table to this file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// What one store gave.
#[derive(Debug, Default)]
struct Outcome {
    creates_per_s: f64,
    create: Samples,
    list_whole: Samples,
    list_paged: Samples,
    watch: Samples,
    cpu_per_create: Duration,
    apiserver_cpu_per_create: Duration,
    cpu_total: Duration,
    rss: u64,
    rss_peak: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let kinds: Vec<StorageKind> = match args.only.as_str() {
        "both" => vec![StorageKind::Etcd36, StorageKind::Oxcd],
        "etcd" => vec![StorageKind::Etcd36],
        "oxcd" => vec![StorageKind::Oxcd],
        other => anyhow::bail!("--only {other}: expected both, etcd or oxcd"),
    };
    let mut results = Vec::new();
    for kind in kinds {
        eprintln!("oxcd-k8s-bench: {} ...", kind.label());
        let r = run(kind, &args).await.with_context(|| format!("on {}", kind.label()))?;
        results.push((kind, r));
    }
    let table = table(&args, &results);
    println!("{table}");
    if let Some(path) = &args.out {
        std::fs::write(path, &table).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

async fn run(kind: StorageKind, args: &Args) -> Result<Outcome> {
    let mut opts = Options::new(kind).without_controller_manager();
    for a in &args.apiserver_arg {
        opts = opts.apiserver_arg(a.clone());
    }
    let cp = ControlPlane::start(opts).await?;
    let pid = cp.storage().members[0].pid().context("the store is not running")?;
    let apiserver = cp.apiserver_pid().context("kube-apiserver is not running")?;
    let client = cp.client();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta { name: Some("bench".into()), ..Default::default() },
                ..Default::default()
            },
        )
        .await
        .context("create namespace bench")?;
    let api: Api<ConfigMap> = Api::namespaced(client, "bench");

    let cpu_start = proc_stats::cpu_time(pid)?;
    let apiserver_start = proc_stats::cpu_time(apiserver)?;
    let (elapsed, create) = load::creates(&api, args.objects, args.size, args.concurrency).await?;
    let cpu_creates = proc_stats::cpu_time(pid)? - cpu_start;
    let apiserver_creates = proc_stats::cpu_time(apiserver)? - apiserver_start;
    let list_whole = load::lists(&api, args.lists, None, args.objects).await?;
    let list_paged = load::lists(&api, args.lists, Some(args.page), args.objects).await?;
    let watch = load::watch_delivery(&api, args.watch_events).await?;
    let cpu_total = proc_stats::cpu_time(pid)? - cpu_start;
    let (rss, rss_peak) = proc_stats::rss(pid)?;
    Ok(Outcome {
        creates_per_s: args.objects as f64 / elapsed.as_secs_f64(),
        create,
        list_whole,
        list_paged,
        watch,
        cpu_per_create: cpu_creates / args.objects.max(1) as u32,
        apiserver_cpu_per_create: apiserver_creates / args.objects.max(1) as u32,
        cpu_total,
        rss,
        rss_peak,
    })
}

/// One row of the results table: how an outcome is shown in a cell.
type CellFn<'a> = dyn Fn(&Outcome) -> String + 'a;

fn table(args: &Args, results: &[(StorageKind, Outcome)]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{} ConfigMaps of {} B, {} creates in flight; {} lists of all of them each way; {} watched creates\n\n",
        args.objects, args.size, args.concurrency, args.lists, args.watch_events
    ));
    s.push_str("| measure |");
    for (kind, _) in results {
        s.push_str(&format!(" {} |", kind.label()));
    }
    s.push_str("\n|---|");
    for _ in results {
        s.push_str("---:|");
    }
    s.push('\n');
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0));
    let rows: [(&str, &CellFn<'_>); 9] = [
        ("creates/s", &|o| format!("{:.0}", o.creates_per_s)),
        ("create latency p50 / p99", &|o| o.create.cell()),
        ("list all, one request, p50 / p99", &|o| o.list_whole.cell()),
        (&format!("list all, pages of {}, p50 / p99", args.page), &|o| o.list_paged.cell()),
        ("create → watch event, p50 / p99", &|o| o.watch.cell()),
        ("store CPU per create", &|o| format!("{} µs", o.cpu_per_create.as_micros())),
        ("kube-apiserver CPU per create", &|o| {
            format!("{} µs", o.apiserver_cpu_per_create.as_micros())
        }),
        ("store CPU, whole load", &|o| format!("{:.1} s", o.cpu_total.as_secs_f64())),
        ("store RSS after / peak", &|o| format!("{} / {}", mib(o.rss), mib(o.rss_peak))),
    ];
    for (name, cell) in rows {
        s.push_str(&format!("| {name} |"));
        for (_, o) in results {
            s.push_str(&format!(" {} |", cell(o)));
        }
        s.push('\n');
    }
    s
}
