//! Turning raw latency samples into an etcd-style report.
//!
//! The numbers and the text layout follow etcd's `pkg/report` so results from
//! `oxcd-bench` and etcd's own `benchmark` tool can be read side by side; the
//! JSON form carries the same numbers (seconds as floats) for `compare.sh`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// The percentiles every report lists, as etcd's report does.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Number of linear histogram buckets between fastest and slowest (etcd uses 10).
const HISTOGRAM_BUCKETS: usize = 10;

/// Width in characters of the longest histogram bar.
const BAR_WIDTH: u64 = 40;

/// Everything a workload measured: successful latencies grouped by request
/// kind, error counts, and the wall-clock time of the measured phase.
///
/// Kept separate from [`Report`] so workers can merge cheaply and the
/// statistics are computed once, at the end.
#[derive(Debug, Default)]
pub struct Samples {
    /// Wall-clock time from the first request sent to the last one finished.
    pub elapsed: Duration,
    /// Latencies of successful requests, keyed by request kind ("put", "range", ...).
    pub latencies: BTreeMap<&'static str, Vec<Duration>>,
    /// Failed requests, keyed by a short error description.
    pub errors: BTreeMap<String, u64>,
}

impl Samples {
    /// Records one successful request of the given kind.
    pub fn ok(&mut self, kind: &'static str, latency: Duration) {
        self.latencies.entry(kind).or_default().push(latency);
    }

    /// Records one failed request.
    pub fn err(&mut self, what: impl Into<String>) {
        self.err_n(what, 1);
    }

    /// Records `n` failed requests with the same cause (e.g. events never delivered).
    pub fn err_n(&mut self, what: impl Into<String>, n: u64) {
        if n > 0 {
            *self.errors.entry(what.into()).or_default() += n;
        }
    }

    /// Folds another worker's samples into these (elapsed is left alone: the
    /// runner measures it once for the whole phase).
    pub fn merge(&mut self, other: Samples) {
        for (kind, mut lats) in other.latencies {
            self.latencies.entry(kind).or_default().append(&mut lats);
        }
        for (what, n) in other.errors {
            *self.errors.entry(what).or_default() += n;
        }
    }
}

/// One histogram bucket: how many requests took at most `le` seconds (and
/// more than the previous bucket's bound).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound of the bucket, in seconds.
    pub le: f64,
    /// Requests that fell into it.
    pub count: u64,
}

/// Latency statistics of one set of requests; all times are in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors_total: u64,
    /// Wall-clock seconds of the measured phase.
    pub total_secs: f64,
    /// Slowest successful request.
    pub slowest: f64,
    /// Fastest successful request.
    pub fastest: f64,
    /// Mean latency.
    pub average: f64,
    /// Population standard deviation of the latency.
    pub stddev: f64,
    /// Successful requests divided by `total_secs`.
    pub requests_per_sec: f64,
    /// Linear histogram between fastest and slowest, as etcd prints it.
    pub histogram: Vec<Bucket>,
    /// Latency percentiles keyed "p10" .. "p99.9".
    pub percentiles: BTreeMap<String, f64>,
}

/// A complete report: overall statistics, per-kind breakdown for mixed
/// workloads, and the error distribution.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Workload name, e.g. "put" or "txn-mixed".
    pub workload: String,
    /// Statistics over every successful request.
    #[serde(flatten)]
    pub stats: Stats,
    /// Per-kind statistics when the workload issued more than one kind of request.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub breakdown: BTreeMap<String, Stats>,
    /// Error message -> count.
    pub errors: BTreeMap<String, u64>,
}

/// The JSON key of a percentile: 99.9 -> "p99.9", 50 -> "p50".
pub fn percentile_key(p: f64) -> String {
    format!("p{p}")
}

/// Nearest-rank percentile of already sorted data; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

/// etcd's histogram: `HISTOGRAM_BUCKETS` equal-width buckets from fastest to
/// slowest, each counting the samples at or below its bound.
pub fn histogram(sorted: &[f64]) -> Vec<Bucket> {
    let (Some(&fastest), Some(&slowest)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let width = (slowest - fastest) / HISTOGRAM_BUCKETS as f64;
    let mut bounds: Vec<f64> = (0..HISTOGRAM_BUCKETS).map(|i| fastest + width * i as f64).collect();
    bounds.push(slowest);
    let mut buckets: Vec<Bucket> = bounds.into_iter().map(|le| Bucket { le, count: 0 }).collect();
    let mut b = 0;
    for &x in sorted {
        while b + 1 < buckets.len() && x > buckets[b].le {
            b += 1;
        }
        buckets[b].count += 1;
    }
    buckets
}

/// Computes statistics over latencies (any order) measured during `elapsed`.
pub fn stats(latencies: &[Duration], errors_total: u64, elapsed: Duration) -> Stats {
    let mut secs: Vec<f64> = latencies.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    let n = secs.len() as f64;
    let total_secs = elapsed.as_secs_f64();
    let (average, stddev) = if secs.is_empty() {
        (0.0, 0.0)
    } else {
        let avg = secs.iter().sum::<f64>() / n;
        let var = secs.iter().map(|x| (x - avg).powi(2)).sum::<f64>() / n;
        (avg, var.sqrt())
    };
    Stats {
        requests: secs.len() as u64,
        errors_total,
        total_secs,
        slowest: secs.last().copied().unwrap_or(0.0),
        fastest: secs.first().copied().unwrap_or(0.0),
        average,
        stddev,
        requests_per_sec: if total_secs > 0.0 { n / total_secs } else { 0.0 },
        histogram: histogram(&secs),
        percentiles: PERCENTILES
            .iter()
            .filter_map(|&p| percentile(&secs, p).map(|v| (percentile_key(p), v)))
            .collect(),
    }
}

impl Report {
    /// Builds the report of one workload from everything its workers measured.
    pub fn new(workload: &str, samples: &Samples) -> Self {
        let all: Vec<Duration> = samples.latencies.values().flatten().copied().collect();
        let errors_total = samples.errors.values().sum();
        let breakdown = if samples.latencies.len() > 1 {
            samples
                .latencies
                .iter()
                .map(|(kind, lats)| (kind.to_string(), stats(lats, 0, samples.elapsed)))
                .collect()
        } else {
            BTreeMap::new()
        };
        Report {
            workload: workload.to_string(),
            stats: stats(&all, errors_total, samples.elapsed),
            breakdown,
            errors: samples.errors.clone(),
        }
    }

    /// Renders the report in etcd's human-readable layout.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        write_stats(&mut out, "Summary", &self.stats);
        for (kind, s) in &self.breakdown {
            out.push('\n');
            write_stats(&mut out, &format!("Summary of {kind} requests"), s);
        }
        if !self.errors.is_empty() {
            out.push_str("\nError distribution:\n");
            for (what, n) in &self.errors {
                let _ = writeln!(out, "  [{n}]\t{what}");
            }
        }
        out
    }
}

/// Appends one "Summary / histogram / distribution" block.
fn write_stats(out: &mut String, title: &str, s: &Stats) {
    let _ = writeln!(out, "\n{title}:");
    let _ = writeln!(out, "  Total:\t{:.4} secs.", s.total_secs);
    let _ = writeln!(out, "  Slowest:\t{:.4} secs.", s.slowest);
    let _ = writeln!(out, "  Fastest:\t{:.4} secs.", s.fastest);
    let _ = writeln!(out, "  Average:\t{:.4} secs.", s.average);
    let _ = writeln!(out, "  Stddev:\t{:.4} secs.", s.stddev);
    let _ = writeln!(out, "  Requests/sec:\t{:.4}", s.requests_per_sec);
    let _ = writeln!(out, "  Requests:\t{} ok, {} failed", s.requests, s.errors_total);
    if s.histogram.is_empty() {
        return;
    }
    let max = s.histogram.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    out.push_str("\nResponse time histogram:\n");
    for b in &s.histogram {
        let bar = "∎".repeat((b.count * BAR_WIDTH / max) as usize);
        let _ = writeln!(out, "  {:.4} [{}]\t|{bar}", b.le, b.count);
    }
    out.push_str("\nLatency distribution:\n");
    for p in PERCENTILES {
        if let Some(v) = s.percentiles.get(&percentile_key(p)) {
            let _ = writeln!(out, "  {p}% in {v:.4} secs.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentile_nearest_rank() {
        let data: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&data, 50.0), Some(50.0));
        assert_eq!(percentile(&data, 99.0), Some(99.0));
        assert_eq!(percentile(&data, 99.9), Some(100.0));
        assert_eq!(percentile(&data, 10.0), Some(10.0));
        assert_eq!(percentile(&[7.0], 99.9), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_clamps_low_end() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 0.0), Some(1.0));
    }

    #[test]
    fn histogram_counts_every_sample_once() {
        let data: Vec<f64> = (0..=100).map(f64::from).collect();
        let h = histogram(&data);
        assert_eq!(h.len(), HISTOGRAM_BUCKETS + 1);
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 101);
        assert_eq!(h[0].le, 0.0);
        assert_eq!(h[0].count, 1);
        assert_eq!(h[1].count, 10); // 1..=10
        assert_eq!(h.last().map(|b| b.le), Some(100.0));
    }

    #[test]
    fn histogram_of_identical_samples() {
        let h = histogram(&[0.5, 0.5, 0.5]);
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 3);
        assert_eq!(h[0].count, 3);
        assert!(histogram(&[]).is_empty());
    }

    #[test]
    fn stats_summary_numbers() {
        let lats = [ms(1), ms(2), ms(3), ms(4)];
        let s = stats(&lats, 2, Duration::from_secs(2));
        assert_eq!(s.requests, 4);
        assert_eq!(s.errors_total, 2);
        assert!((s.average - 0.0025).abs() < 1e-12);
        assert!((s.fastest - 0.001).abs() < 1e-12);
        assert!((s.slowest - 0.004).abs() < 1e-12);
        assert!((s.requests_per_sec - 2.0).abs() < 1e-12);
        // population stddev of 1,2,3,4 ms is sqrt(1.25) ms
        assert!((s.stddev - 1.25f64.sqrt() / 1000.0).abs() < 1e-12);
        assert_eq!(s.percentiles.len(), PERCENTILES.len());
        assert!((s.percentiles["p50"] - 0.002).abs() < 1e-12);
        assert!((s.percentiles["p99.9"] - 0.004).abs() < 1e-12);
    }

    #[test]
    fn empty_stats_are_zero() {
        let s = stats(&[], 3, Duration::ZERO);
        assert_eq!(s.requests, 0);
        assert_eq!(s.requests_per_sec, 0.0);
        assert!(s.percentiles.is_empty());
        assert!(s.histogram.is_empty());
    }

    #[test]
    fn report_breaks_down_mixed_workloads() {
        let mut a = Samples::default();
        a.ok("range", ms(1));
        a.err("timeout");
        let mut b = Samples::default();
        b.ok("txn-put", ms(5));
        b.ok("range", ms(2));
        b.err("timeout");
        a.merge(b);
        a.elapsed = Duration::from_secs(1);
        let r = Report::new("txn-mixed", &a);
        assert_eq!(r.stats.requests, 3);
        assert_eq!(r.stats.errors_total, 2);
        assert_eq!(r.errors["timeout"], 2);
        assert_eq!(r.breakdown["range"].requests, 2);
        assert_eq!(r.breakdown["txn-put"].requests, 1);
        let text = r.to_text();
        assert!(text.contains("Summary of range requests"));
        assert!(text.contains("99.9% in"));
        let json = serde_json::to_value(&r).expect("report serialises");
        assert_eq!(json["requests"], 3);
        assert!(json["percentiles"]["p99.9"].is_f64());
    }

    #[test]
    fn single_kind_has_no_breakdown() {
        let mut s = Samples::default();
        s.ok("put", ms(1));
        let r = Report::new("put", &s);
        assert!(r.breakdown.is_empty());
        let json = serde_json::to_value(&r).expect("report serialises");
        assert!(json.get("breakdown").is_none());
    }
}
