//! `lease-keepalive`: grant many leases, then measure keep-alives on them.
//!
//! Each keep-alive is a "keep-alive once" exactly as etcd's benchmark and
//! `etcdctl lease keep-alive --once` do it: open a LeaseKeepAlive stream,
//! send one request, wait for its answer. That exercises the lease lookup
//! and renewal path (and, on etcd, the leader check) for every lease.

use std::sync::Arc;

use etcd_client::LeaseClient;

use crate::report::{Report, Samples};
use crate::workload::{self, Settings, Worker};

/// One client granting leases and remembering their ids.
struct GrantWorker {
    lease: LeaseClient,
    ttl: i64,
    granted: Vec<i64>,
}

impl Worker for GrantWorker {
    async fn call(&mut self, _seq: u64) -> Result<&'static str, etcd_client::Error> {
        let resp = self.lease.grant(self.ttl, None).await?;
        self.granted.push(resp.id());
        Ok("grant")
    }
}

/// One client renewing leases: request `seq` renews lease `seq % leases`.
struct KeepAliveWorker {
    lease: LeaseClient,
    ids: Arc<Vec<i64>>,
}

impl Worker for KeepAliveWorker {
    async fn call(&mut self, seq: u64) -> Result<&'static str, etcd_client::Error> {
        let id = self.ids[(seq % self.ids.len() as u64) as usize];
        // The client sends the first keep-alive and awaits its answer before returning;
        // dropping the keeper and stream closes the stream, like KeepAliveOnce.
        let (_keeper, _stream) = self.lease.keep_alive(id).await?;
        Ok("keepalive")
    }
}

/// Grants `settings.total` leases of `ttl` seconds, then keeps each alive
/// `rounds` times; the samples are the keep-alive latencies.
pub async fn run(settings: &Settings, ttl: i64, rounds: u64) -> anyhow::Result<Samples> {
    anyhow::ensure!(ttl >= 1, "--ttl must be at least 1 second");
    let conns = workload::connect(settings).await?;

    let grants = (0..settings.clients)
        .map(|i| GrantWorker {
            lease: workload::conn_for(&conns, i).lease_client(),
            ttl,
            granted: Vec::new(),
        })
        .collect();
    let bar = workload::progress_bar(settings.total, settings.progress, "grant");
    let granted =
        workload::run(settings.total, settings.rate, settings.timeout, &bar, grants).await;
    let grant_stats = Report::new("lease-grant", &granted.samples).stats;
    eprintln!(
        "granted {} leases ({} failed) in {:.3}s, {:.1}/s, p99 {:.4}s",
        grant_stats.requests,
        grant_stats.errors_total,
        grant_stats.total_secs,
        grant_stats.requests_per_sec,
        grant_stats.percentiles.get("p99").copied().unwrap_or(0.0),
    );
    let ids: Arc<Vec<i64>> =
        Arc::new(granted.workers.into_iter().flat_map(|w| w.granted).collect());
    anyhow::ensure!(!ids.is_empty(), "no lease could be granted");

    let total = ids.len() as u64 * rounds;
    let workers = (0..settings.clients)
        .map(|i| KeepAliveWorker {
            lease: workload::conn_for(&conns, i).lease_client(),
            ids: Arc::clone(&ids),
        })
        .collect();
    let bar = workload::progress_bar(total, settings.progress, "keepalive");
    let out = workload::run(total, settings.rate, settings.timeout, &bar, workers).await;
    Ok(out.samples)
}
