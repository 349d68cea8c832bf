//! Counts of the raft traffic between members, as etcd keeps them for its v2 statistics
//! (`/v2/stats/leader`: per-follower append latency and successes/failures; `/v2/stats/self`:
//! append requests sent and received). Tools written for etcd v2 clusters read these to tell a
//! slow or unreachable follower; the Prometheus families carry the same facts for new tools.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Raft traffic seen by one member; shared by its network (sending) and peer service
/// (receiving).
#[derive(Debug, Default)]
pub struct PeerStats {
    followers: Mutex<BTreeMap<u64, FollowerStats>>,
    appends_sent: AtomicU64,
    appends_received: AtomicU64,
}

/// One follower as its leader saw it (etcd's `FollowerStats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FollowerStats {
    /// Round trips of append calls, in milliseconds.
    pub latency: LatencyStats,
    /// Append calls answered.
    pub success: u64,
    /// Append calls that failed (peer unreachable or refusing).
    pub fail: u64,
}

/// Running latency figures in milliseconds, computed as etcd's `LatencyStats` does (running
/// mean of values and of squares; the deviation from both).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyStats {
    /// The last round trip.
    pub current: f64,
    /// Mean of all round trips.
    pub average: f64,
    average_square: f64,
    /// Standard deviation of all round trips.
    pub standard_deviation: f64,
    /// Fastest round trip (0 before the first).
    pub minimum: f64,
    /// Slowest round trip.
    pub maximum: f64,
}

impl PeerStats {
    /// Records an append call to `follower`: its round trip if answered, `None` if it failed.
    /// `carried_entries` says whether it was a real append rather than a heartbeat (etcd
    /// counts only the former as sent append requests).
    pub fn append_sent(&self, follower: u64, round_trip: Option<Duration>, carried_entries: bool) {
        if carried_entries {
            self.appends_sent.fetch_add(1, Ordering::Relaxed);
        }
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        let stats = followers.entry(follower).or_default();
        match round_trip {
            Some(rtt) => stats.succeeded(rtt),
            None => stats.fail += 1,
        }
    }

    /// Records an append request with entries received from the leader.
    pub fn append_received(&self) {
        self.appends_received.fetch_add(1, Ordering::Relaxed);
    }

    /// Append requests with entries this member sent as leader.
    pub fn appends_sent(&self) -> u64 {
        self.appends_sent.load(Ordering::Relaxed)
    }

    /// Append requests with entries this member received as follower.
    pub fn appends_received(&self) -> u64 {
        self.appends_received.load(Ordering::Relaxed)
    }

    /// Every follower this member has sent appends to.
    pub fn followers(&self) -> BTreeMap<u64, FollowerStats> {
        self.followers.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl FollowerStats {
    fn succeeded(&mut self, round_trip: Duration) {
        self.success += 1;
        let ms = round_trip.as_secs_f64() * 1000.0;
        let n = self.success as f64;
        let l = &mut self.latency;
        l.current = ms;
        l.average += (ms - l.average) / n;
        l.average_square += (ms * ms - l.average_square) / n;
        l.standard_deviation = (l.average_square - l.average * l.average).max(0.0).sqrt();
        l.minimum = if self.success == 1 { ms } else { l.minimum.min(ms) };
        l.maximum = l.maximum.max(ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_figures_follow_the_round_trips() {
        let stats = PeerStats::default();
        for ms in [2, 4, 6] {
            stats.append_sent(7, Some(Duration::from_millis(ms)), true);
        }
        stats.append_sent(7, None, false);
        stats.append_sent(7, Some(Duration::from_millis(4)), false);
        let f = &stats.followers()[&7];
        assert_eq!((f.success, f.fail), (4, 1));
        assert_eq!((f.latency.current, f.latency.minimum, f.latency.maximum), (4.0, 2.0, 6.0));
        assert!((f.latency.average - 4.0).abs() < 1e-9);
        // Population deviation of 2, 4, 6, 4.
        assert!((f.latency.standard_deviation - 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(stats.appends_sent(), 3, "heartbeats are not append requests");
    }
}
