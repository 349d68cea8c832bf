//! `oxcd-bench`: a benchmark for etcd-compatible stores, modelled on etcd's
//! `tools/benchmark` (same knobs, same report), speaking the stock etcd v3
//! gRPC API so the very same run can be pointed at etcd and at oxcd.

mod lease;
mod put;
mod range;
mod report;
mod txn;
mod watch;
mod workload;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::range::{Consistency, RangeSpec};
use crate::report::{Report, Samples};
use crate::watch::WatchSpec;
use crate::workload::{KeyGen, Settings};

/// Benchmark an etcd-compatible server (etcd, oxcd) over the etcd v3 API.
#[derive(Debug, Parser)]
#[command(name = "oxcd-bench", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by every workload; accepted before or after the subcommand.
#[derive(Debug, clap::Args)]
struct Global {
    /// Comma-separated client endpoints.
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Number of gRPC connections the clients share.
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,
    /// Number of concurrent clients.
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Total number of requests.
    #[arg(long, global = true, default_value_t = 10_000)]
    total: u64,
    /// Key size in bytes.
    #[arg(long, global = true, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, global = true, default_value_t = 8)]
    val_size: usize,
    /// Number of distinct keys.
    #[arg(long, global = true, default_value_t = 1)]
    key_space_size: u64,
    /// Use keys 0, 1, 2, ... (mod the key space) instead of random ones.
    #[arg(long, global = true)]
    sequential_keys: bool,
    /// Maximum requests per second over all clients (0 = unlimited).
    #[arg(long, global = true, default_value_t = 0.0)]
    rate: f64,
    /// Print the report as one JSON object on stdout (no progress bar).
    #[arg(long, global = true)]
    json: bool,
    /// Seconds after which a single request counts as failed.
    #[arg(long, global = true, default_value_t = 30.0)]
    timeout: f64,
    /// Seconds allowed to connect to the endpoints.
    #[arg(long, global = true, default_value_t = 5.0)]
    dial_timeout: f64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark put.
    Put,
    /// Benchmark range: `key [end]` every time, or a random key of the key space if no key is given.
    Range {
        /// Key to read (default: a random key of the key space per request).
        key: Option<String>,
        /// Range end (exclusive).
        end: Option<String>,
        /// Linearizable (l) or serializable (s).
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
        /// Maximum number of keys returned (0 = no limit).
        #[arg(long, default_value_t = 0)]
        limit: i64,
    },
    /// Benchmark txn with put operations.
    TxnPut {
        /// Number of puts per transaction.
        #[arg(long, default_value_t = 1)]
        txn_ops: usize,
    },
    /// Benchmark a mix of ranges (reads) and txn puts (writes).
    TxnMixed {
        /// Reads per write.
        #[arg(long, default_value_t = 1.0)]
        rw_ratio: f64,
        /// Consistency of the reads: linearizable (l) or serializable (s).
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
    },
    /// Benchmark watch fan-out: event delivery latency over all watchers.
    Watch {
        /// Number of watchers.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Number of watch streams the watchers are spread over.
        #[arg(long, default_value_t = 10)]
        streams: usize,
        /// Number of distinct watched keys.
        #[arg(long, default_value_t = 1)]
        watched_key_total: u64,
        /// Number of puts to the watched keys.
        #[arg(long, default_value_t = 100)]
        put_total: u64,
        /// Puts per second (0 = unlimited); puts use --clients clients.
        #[arg(long, default_value_t = 0.0)]
        put_rate: f64,
    },
    /// Benchmark watch latency: paced puts to one key seen by every watcher.
    WatchLatency {
        /// Number of puts.
        #[arg(long, default_value_t = 1000)]
        put_total: u64,
        /// Puts per second.
        #[arg(long, default_value_t = 100.0)]
        put_rate: f64,
        /// Number of watch streams.
        #[arg(long, default_value_t = 10)]
        streams: usize,
        /// Watchers per stream.
        #[arg(long, default_value_t = 10)]
        watchers_per_stream: usize,
    },
    /// Benchmark lease keep-alive: grant --total leases, then keep each alive.
    LeaseKeepalive {
        /// TTL of the granted leases, in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: i64,
        /// Keep-alives per lease.
        #[arg(long, default_value_t = 1)]
        rounds: u64,
    },
}

impl Command {
    /// The workload name used in reports.
    fn name(&self) -> &'static str {
        match self {
            Command::Put => "put",
            Command::Range { .. } => "range",
            Command::TxnPut { .. } => "txn-put",
            Command::TxnMixed { .. } => "txn-mixed",
            Command::Watch { .. } => "watch",
            Command::WatchLatency { .. } => "watch-latency",
            Command::LeaseKeepalive { .. } => "lease-keepalive",
        }
    }
}

/// Converts the global flags to runner settings, rejecting nonsense early.
fn settings(g: &Global) -> anyhow::Result<Settings> {
    anyhow::ensure!(!g.endpoints.is_empty(), "--endpoints is empty");
    anyhow::ensure!(g.conns >= 1, "--conns must be at least 1");
    anyhow::ensure!(g.clients >= 1, "--clients must be at least 1");
    anyhow::ensure!(g.rate.is_finite() && g.rate >= 0.0, "--rate must be >= 0");
    anyhow::ensure!(g.timeout.is_finite() && g.timeout > 0.0, "--timeout must be > 0");
    anyhow::ensure!(
        g.dial_timeout.is_finite() && g.dial_timeout > 0.0,
        "--dial-timeout must be > 0"
    );
    let keys = KeyGen { size: g.key_size, space: g.key_space_size, sequential: g.sequential_keys };
    keys.validate()?;
    Ok(Settings {
        endpoints: g.endpoints.clone(),
        conns: g.conns,
        clients: g.clients,
        total: g.total,
        rate: g.rate,
        timeout: Duration::from_secs_f64(g.timeout),
        dial_timeout: Duration::from_secs_f64(g.dial_timeout),
        progress: !g.json,
        keys,
        val_size: g.val_size,
    })
}

/// Runs the chosen workload to completion.
async fn execute(command: &Command, s: &Settings) -> anyhow::Result<Samples> {
    match command {
        Command::Put => put::run(s).await,
        Command::Range { key, end, consistency, limit } => {
            anyhow::ensure!(key.is_some() || end.is_none(), "a range end needs a start key");
            let spec = RangeSpec {
                key: key.as_ref().map(|k| k.clone().into_bytes()),
                end: end.as_ref().map(|e| e.clone().into_bytes()),
                consistency: *consistency,
                limit: *limit,
            };
            range::run(s, spec).await
        }
        Command::TxnPut { txn_ops } => txn::run_put(s, *txn_ops).await,
        Command::TxnMixed { rw_ratio, consistency } => {
            let reads = RangeSpec { key: None, end: None, consistency: *consistency, limit: 0 };
            txn::run_mixed(s, *rw_ratio, reads).await
        }
        Command::Watch { watchers, streams, watched_key_total, put_total, put_rate } => {
            let spec = WatchSpec {
                watchers: *watchers,
                streams: *streams,
                watched_keys: *watched_key_total,
                put_total: *put_total,
                put_rate: *put_rate,
                put_clients: s.clients,
            };
            watch::run(s, &spec).await
        }
        Command::WatchLatency { put_total, put_rate, streams, watchers_per_stream } => {
            let spec = WatchSpec {
                watchers: streams * watchers_per_stream,
                streams: *streams,
                watched_keys: 1,
                put_total: *put_total,
                put_rate: *put_rate,
                put_clients: 1,
            };
            watch::run(s, &spec).await
        }
        Command::LeaseKeepalive { ttl, rounds } => lease::run(s, *ttl, *rounds).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(&cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oxcd-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark and prints its report; fails only on setup errors.
/// Exit code 1 means the run completed but no request succeeded.
async fn real_main(cli: &Cli) -> anyhow::Result<ExitCode> {
    let s = settings(&cli.global)?;
    let name = cli.command.name();
    if !cli.global.json {
        eprintln!(
            "{name}: {} clients over {} conns against {}",
            s.clients,
            s.conns,
            s.endpoints.join(",")
        );
    }
    let samples = execute(&cli.command, &s).await?;
    let report = Report::new(name, &samples);
    if cli.global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    if report.stats.requests == 0 && report.stats.errors_total > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
