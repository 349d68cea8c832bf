//! `watch` and `watch-latency`: event delivery latency under fan-out.
//!
//! Watchers are spread over a number of watch streams (themselves spread over
//! the connections) and each watches one of the watched keys. Puts then go to
//! those keys, and every event received by every watcher yields one sample:
//! the time from just before its put was sent until the event arrived. So a
//! put seen by 1,000 watchers contributes 1,000 samples, and the slow tail of
//! the fan-out shows in p99. Each put's value carries its sequence number,
//! which is how an event is matched to its send time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use etcd_client::{KvClient, WatchStream};
use indicatif::ProgressBar;

use crate::report::Samples;
use crate::workload::{self, KeyGen, Settings, Worker};

/// Shape of a watch benchmark.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// Total watchers.
    pub watchers: usize,
    /// Watch streams the watchers are spread over (round robin).
    pub streams: usize,
    /// Distinct keys watched; watcher `w` watches key `w % watched_keys`.
    pub watched_keys: u64,
    /// Puts issued; put `seq` goes to key `seq % watched_keys`.
    pub put_total: u64,
    /// Puts per second; 0 means unlimited.
    pub put_rate: f64,
    /// Concurrent put clients.
    pub put_clients: usize,
}

/// Send time of every put, indexed by sequence number.
type SendTimes = Arc<Vec<OnceLock<Instant>>>;

/// Size of the sequence-number prefix of every value.
const SEQ_BYTES: usize = 8;

/// Value of put `seq`: its sequence number, padded to `val_size`.
fn encode_value(seq: u64, val_size: usize) -> Vec<u8> {
    let mut v = seq.to_be_bytes().to_vec();
    v.resize(val_size.max(SEQ_BYTES), b'x');
    v
}

/// Sequence number carried by a value written by [`encode_value`].
fn decode_seq(value: &[u8]) -> Option<u64> {
    let prefix: [u8; SEQ_BYTES] = value.get(..SEQ_BYTES)?.try_into().ok()?;
    Some(u64::from_be_bytes(prefix))
}

/// Events a watcher on key `k` will see: the puts with `seq % keys == k`.
fn events_for_key(k: u64, keys: u64, put_total: u64) -> u64 {
    put_total / keys + u64::from(k < put_total % keys)
}

/// One put client, stamping each put's send time before sending it.
struct PutWorker {
    kv: KvClient,
    keys: KeyGen,
    val_size: usize,
    sent: SendTimes,
}

impl Worker for PutWorker {
    async fn call(&mut self, seq: u64) -> Result<&'static str, etcd_client::Error> {
        let key = self.keys.nth(seq);
        let value = encode_value(seq, self.val_size);
        if let Some(slot) = self.sent.get(seq as usize) {
            let _ = slot.set(Instant::now());
        }
        self.kv.put(key, value, None).await?;
        Ok("put")
    }
}

/// Opens one watch stream with a watcher per key in `keys`, and waits until
/// the server has confirmed every watcher so that no put can be missed.
async fn open_stream(
    client: &etcd_client::Client,
    keys: &[Vec<u8>],
    timeout: Duration,
) -> anyhow::Result<WatchStream> {
    let (first, rest) =
        keys.split_first().ok_or_else(|| anyhow::anyhow!("stream without watchers"))?;
    let mut wc = client.watch_client();
    let mut stream = tokio::time::timeout(timeout, wc.watch(first.clone(), None))
        .await
        .map_err(|_| anyhow::anyhow!("timed out opening a watch stream"))??;
    for key in rest {
        stream.watch(key.clone(), None).await?;
    }
    let mut created = 0;
    while created < keys.len() {
        let resp = tokio::time::timeout(timeout, stream.message())
            .await
            .map_err(|_| anyhow::anyhow!("timed out waiting for watchers to be created"))??
            .ok_or_else(|| anyhow::anyhow!("watch stream closed while creating watchers"))?;
        anyhow::ensure!(!resp.canceled(), "watch canceled by server: {}", resp.cancel_reason());
        if resp.created() {
            created += 1;
        }
    }
    Ok(stream)
}

/// Reads `expected` events from a stream, one sample per event.
///
/// Bounded: it stops on the expected count, on stream end or error, or when
/// no message came for `timeout` after the puts have finished.
async fn drain(
    mut stream: WatchStream,
    expected: u64,
    sent: SendTimes,
    puts_done: Arc<AtomicBool>,
    timeout: Duration,
    bar: ProgressBar,
) -> Samples {
    let mut samples = Samples::default();
    let mut got = 0u64;
    while got < expected {
        let resp = match tokio::time::timeout(timeout, stream.message()).await {
            Err(_) if puts_done.load(Ordering::Acquire) => {
                samples.err_n("event not received (timed out)", expected - got);
                break;
            }
            Err(_) => continue,
            Ok(Err(e)) => {
                samples.err(workload::describe(&e));
                samples.err_n("event not received (stream failed)", expected - got);
                break;
            }
            Ok(Ok(None)) => {
                samples.err_n("event not received (stream closed)", expected - got);
                break;
            }
            Ok(Ok(Some(resp))) => resp,
        };
        let now = Instant::now();
        if resp.canceled() {
            samples.err(format!("watch canceled: {}", resp.cancel_reason()));
            samples.err_n("event not received (watch canceled)", expected - got);
            break;
        }
        for ev in resp.events() {
            got += 1;
            bar.inc(1);
            let start = ev
                .kv()
                .and_then(|kv| decode_seq(kv.value()))
                .and_then(|seq| sent.get(usize::try_from(seq).ok()?)?.get().copied());
            match start {
                Some(start) => samples.ok("event", now.saturating_duration_since(start)),
                None => samples.err("event for an unknown put"),
            }
        }
    }
    samples
}

/// Runs the watch benchmark; the samples are per-event delivery latencies.
pub async fn run(settings: &Settings, spec: &WatchSpec) -> anyhow::Result<Samples> {
    anyhow::ensure!(spec.watchers >= 1, "--watchers must be at least 1");
    anyhow::ensure!(spec.streams >= 1, "--streams must be at least 1");
    anyhow::ensure!(spec.put_clients >= 1, "--clients must be at least 1");
    let keys = KeyGen { size: settings.keys.size, space: spec.watched_keys, sequential: true };
    keys.validate()?;
    let conns = workload::connect(settings).await?;

    // Watchers, round robin over streams; streams round robin over connections.
    let created_at = Instant::now();
    let mut streams = Vec::new();
    for s in 0..spec.streams.min(spec.watchers) {
        let watched: Vec<u64> = (s..spec.watchers)
            .step_by(spec.streams)
            .map(|w| w as u64 % spec.watched_keys)
            .collect();
        let key_names: Vec<Vec<u8>> = watched.iter().map(|&k| keys.nth(k)).collect();
        let client = workload::conn_for(&conns, s);
        let stream = open_stream(client, &key_names, settings.timeout).await?;
        let expected: u64 =
            watched.iter().map(|&k| events_for_key(k, spec.watched_keys, spec.put_total)).sum();
        streams.push((stream, expected));
    }
    eprintln!(
        "created {} watchers on {} streams in {:.3}s",
        spec.watchers,
        streams.len(),
        created_at.elapsed().as_secs_f64()
    );

    let sent: SendTimes = Arc::new((0..spec.put_total).map(|_| OnceLock::new()).collect());
    let puts_done = Arc::new(AtomicBool::new(false));
    let expected_total: u64 = streams.iter().map(|(_, e)| e).sum();
    let bar = workload::progress_bar(expected_total, settings.progress, "events");
    let readers: Vec<_> = streams
        .into_iter()
        .map(|(stream, expected)| {
            tokio::spawn(drain(
                stream,
                expected,
                Arc::clone(&sent),
                Arc::clone(&puts_done),
                settings.timeout,
                bar.clone(),
            ))
        })
        .collect();

    let start = Instant::now();
    let workers = (0..spec.put_clients)
        .map(|i| PutWorker {
            kv: workload::conn_for(&conns, i).kv_client(),
            keys,
            val_size: settings.val_size,
            sent: Arc::clone(&sent),
        })
        .collect();
    let hidden = ProgressBar::hidden();
    let puts =
        workload::run(spec.put_total, spec.put_rate, settings.timeout, &hidden, workers).await;
    puts_done.store(true, Ordering::Release);

    let mut samples = Samples::default();
    for reader in readers {
        match reader.await {
            Ok(s) => samples.merge(s),
            Err(e) => samples.err(format!("watch reader failed: {e}")),
        }
    }
    samples.elapsed = start.elapsed();
    bar.finish_and_clear();

    let put_stats = crate::report::Report::new("put", &puts.samples).stats;
    eprintln!(
        "puts: {} ok, {} failed, p50 {:.4}s, p99 {:.4}s",
        put_stats.requests,
        put_stats.errors_total,
        put_stats.percentiles.get("p50").copied().unwrap_or(0.0),
        put_stats.percentiles.get("p99").copied().unwrap_or(0.0),
    );
    for (what, n) in puts.samples.errors {
        samples.err_n(format!("put failed: {what}"), n);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_sequence_number() {
        let v = encode_value(42, 256);
        assert_eq!(v.len(), 256);
        assert_eq!(decode_seq(&v), Some(42));
        assert_eq!(encode_value(7, 1).len(), SEQ_BYTES);
        assert_eq!(decode_seq(b"short"), None);
    }

    #[test]
    fn events_split_over_keys() {
        // 10 puts over 3 keys: key 0 gets 0,3,6,9; keys 1,2 get three each.
        assert_eq!(events_for_key(0, 3, 10), 4);
        assert_eq!(events_for_key(1, 3, 10), 3);
        assert_eq!(events_for_key(2, 3, 10), 3);
        assert_eq!(events_for_key(0, 1, 10), 10);
        let total: u64 = (0..7).map(|k| events_for_key(k, 7, 100)).sum();
        assert_eq!(total, 100);
    }
}
