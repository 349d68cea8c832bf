//! The shared runner: connections, clients, request budget, rate limit,
//! per-request timeout and progress bar, handled the same way for every
//! workload so that only the request itself differs between them.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::Rng;

use crate::report::Samples;

/// Settings every workload shares, taken from the global command-line flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client endpoints, e.g. `127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Number of gRPC connections the clients are spread over.
    pub conns: usize,
    /// Number of concurrent clients (each keeps one request in flight).
    pub clients: usize,
    /// Requests to issue in the measured phase.
    pub total: u64,
    /// Requests per second over all clients; 0 means unlimited.
    pub rate: f64,
    /// Bound on any single request, so a stuck server cannot hang the run.
    pub timeout: Duration,
    /// Bound on establishing a connection.
    pub dial_timeout: Duration,
    /// Whether to draw a progress bar on stderr.
    pub progress: bool,
    /// How benchmark keys are chosen.
    pub keys: KeyGen,
    /// Size in bytes of the values written.
    pub val_size: usize,
}

/// Opens `settings.conns` independent client connections.
///
/// Each `Client` owns its own HTTP/2 connection(s), so spreading clients over
/// them reproduces etcd's `--conns` knob.
pub async fn connect(settings: &Settings) -> anyhow::Result<Vec<Client>> {
    let mut conns = Vec::with_capacity(settings.conns);
    for _ in 0..settings.conns.max(1) {
        let opts = ConnectOptions::new().with_connect_timeout(settings.dial_timeout);
        let client = Client::connect(&settings.endpoints, Some(opts))
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {:?}: {e}", settings.endpoints))?;
        conns.push(client);
    }
    // The channel dials lazily: fail fast here rather than report a run of errors.
    let mut probe = conns[0].kv_client();
    tokio::time::timeout(settings.dial_timeout, probe.get("oxcd-bench-probe", None))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {:?}", settings.endpoints))?
        .map_err(|e| anyhow::anyhow!("probing {:?}: {}", settings.endpoints, describe(&e)))?;
    Ok(conns)
}

/// Picks the connection for client `i`: clients are spread round robin.
pub fn conn_for(conns: &[Client], i: usize) -> &Client {
    &conns[i % conns.len()]
}

/// Short, stable description of a client error, used as the error-distribution key.
pub fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

/// How keys are generated: fixed-width decimal numbers, so keys are readable
/// and exactly `size` bytes, drawn from `0..space` either sequentially or at random.
#[derive(Debug, Clone, Copy)]
pub struct KeyGen {
    /// Key length in bytes.
    pub size: usize,
    /// Number of distinct keys.
    pub space: u64,
    /// Sequential (`seq % space`) rather than uniformly random.
    pub sequential: bool,
}

impl KeyGen {
    /// Checks that `space` distinct keys fit in `size` decimal digits.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.space >= 1, "--key-space-size must be at least 1");
        let fits = u32::try_from(self.size)
            .ok()
            .and_then(|d| 10u64.checked_pow(d))
            .is_none_or(|cap| self.space <= cap);
        anyhow::ensure!(
            fits,
            "--key-space-size {} needs more than --key-size {} digits",
            self.space,
            self.size
        );
        Ok(())
    }

    /// The key with index `n` (taken modulo the key space).
    pub fn nth(&self, n: u64) -> Vec<u8> {
        format!("{:0width$}", n % self.space, width = self.size).into_bytes()
    }

    /// The key for request `seq`.
    pub fn key(&self, seq: u64, rng: &mut impl Rng) -> Vec<u8> {
        let n = if self.sequential { seq } else { rng.gen_range(0..self.space) };
        self.nth(n)
    }
}

/// A random printable value of `size` bytes, created once per run as etcd does.
pub fn random_value(size: usize) -> Vec<u8> {
    let mut rng = rand::thread_rng();
    (0..size).map(|_| rng.sample(rand::distributions::Alphanumeric)).collect()
}

/// One client's request loop body. The runner owns timing, pacing and
/// accounting; a worker only issues request number `seq` and says what kind
/// of request it was (for the per-kind breakdown).
pub trait Worker: Send + 'static {
    /// Issues one request.
    fn call(
        &mut self,
        seq: u64,
    ) -> impl Future<Output = Result<&'static str, etcd_client::Error>> + Send;
}

/// What a run measured, plus the workers handed back so that workloads can
/// collect state they gathered (e.g. granted lease ids).
pub struct Outcome<W> {
    /// Latencies and errors.
    pub samples: Samples,
    /// The workers, in their original order.
    pub workers: Vec<W>,
}

/// A progress bar on stderr, or a hidden one when `enabled` is false.
pub fn progress_bar(len: u64, enabled: bool, label: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_string());
    bar
}

/// Runs `total` requests over the given workers (one task per worker, each
/// with one request in flight), at most `rate` per second overall.
///
/// Pacing is by schedule: request `seq` may not start before
/// `start + seq / rate`, which gives a steady rate without bursts and
/// without a token-bucket dependency.
pub async fn run<W: Worker>(
    total: u64,
    rate: f64,
    timeout: Duration,
    bar: &ProgressBar,
    workers: Vec<W>,
) -> Outcome<W> {
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(workers.len());
    for mut worker in workers {
        let next = Arc::clone(&next);
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                if rate > 0.0 {
                    let at = start + Duration::from_secs_f64(seq as f64 / rate);
                    tokio::time::sleep_until(at).await;
                }
                let sent = Instant::now();
                match tokio::time::timeout(timeout, worker.call(seq)).await {
                    Ok(Ok(kind)) => samples.ok(kind, sent.elapsed()),
                    Ok(Err(e)) => samples.err(describe(&e)),
                    Err(_) => samples.err("request timed out"),
                }
                bar.inc(1);
            }
            (samples, worker)
        }));
    }
    let mut samples = Samples::default();
    let mut workers = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((s, w)) => {
                samples.merge(s);
                workers.push(w);
            }
            Err(e) => samples.err(format!("client task failed: {e}")),
        }
    }
    samples.elapsed = start.elapsed();
    bar.finish_and_clear();
    Outcome { samples, workers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn keys_are_fixed_width() {
        let g = KeyGen { size: 8, space: 100, sequential: true };
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(g.key(7, &mut rng), b"00000007");
        assert_eq!(g.key(107, &mut rng), b"00000007");
        let random = KeyGen { sequential: false, ..g };
        for seq in 0..100 {
            let k = random.key(seq, &mut rng);
            assert_eq!(k.len(), 8);
            let n: u64 = std::str::from_utf8(&k).unwrap().parse().unwrap();
            assert!(n < 100);
        }
    }

    #[test]
    fn key_space_must_fit_key_size() {
        let ok = KeyGen { size: 2, space: 100, sequential: false };
        assert!(ok.validate().is_ok());
        assert!(KeyGen { space: 101, ..ok }.validate().is_err());
        assert!(KeyGen { space: 0, ..ok }.validate().is_err());
        assert!(KeyGen { size: 40, ..ok }.validate().is_ok());
    }

    #[test]
    fn values_have_requested_size() {
        assert_eq!(random_value(256).len(), 256);
        assert!(random_value(0).is_empty());
    }

    fn successes(s: &Samples) -> usize {
        s.latencies.values().map(Vec::len).sum()
    }

    struct Counter {
        calls: u64,
        fail_odd: bool,
    }

    impl Worker for Counter {
        async fn call(&mut self, seq: u64) -> Result<&'static str, etcd_client::Error> {
            self.calls += 1;
            if self.fail_odd && seq % 2 == 1 {
                return Err(etcd_client::Error::InvalidArgs("odd".into()));
            }
            Ok("noop")
        }
    }

    #[tokio::test]
    async fn runner_issues_exactly_total_requests() {
        let workers = (0..4).map(|_| Counter { calls: 0, fail_odd: true }).collect();
        let bar = ProgressBar::hidden();
        let out = run(101, 0.0, Duration::from_secs(5), &bar, workers).await;
        assert_eq!(out.workers.iter().map(|w| w.calls).sum::<u64>(), 101);
        assert_eq!(successes(&out.samples), 51);
        assert_eq!(out.samples.errors.values().sum::<u64>(), 50);
    }

    #[tokio::test]
    async fn runner_respects_rate() {
        let workers = (0..2).map(|_| Counter { calls: 0, fail_odd: false }).collect();
        let bar = ProgressBar::hidden();
        let out = run(21, 100.0, Duration::from_secs(5), &bar, workers).await;
        // 21 requests at 100/s: the last may start no earlier than 200 ms in.
        assert!(out.samples.elapsed >= Duration::from_millis(200));
        assert_eq!(successes(&out.samples), 21);
    }
}
