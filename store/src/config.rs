//! The member's configuration: etcd's own flags and `ETCD_*` environment variables, with
//! etcd's names and defaults, so existing scripts and unit files start oxcd unchanged.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// etcd's default `--initial-cluster`, replaced by `name=advertise-peer-urls` when the name
/// changes, as etcd does.
const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";

/// Command-line flags; each also reads `ETCD_<FLAG_NAME>`. A flag given twice takes its last
/// value, as with etcd (Go's flag package).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "oxcd",
    version,
    about = "An etcd-compatible, raft-replicated key-value store",
    args_override_self = true
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `${name}.oxcd`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic.
    #[arg(long, env = "ETCD_LISTEN_CLIENT_URLS", default_value = "http://localhost:2379")]
    pub listen_client_urls: String,
    /// Client URLs advertised to the rest of the cluster.
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS", default_value = "http://localhost:2379")]
    pub advertise_client_urls: String,
    /// URLs to listen on for peer traffic.
    #[arg(long, env = "ETCD_LISTEN_PEER_URLS", default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,
    /// Peer URLs advertised to the rest of the cluster.
    #[arg(long, env = "ETCD_INITIAL_ADVERTISE_PEER_URLS", default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (`name=peer-url,...`).
    #[arg(long, env = "ETCD_INITIAL_CLUSTER", default_value = DEFAULT_INITIAL_CLUSTER)]
    pub initial_cluster: String,
    /// `new` to bootstrap a cluster, `existing` to join one.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new",
          value_parser = ["new", "existing"])]
    pub initial_cluster_state: String,
    /// Token that makes cluster and member ids unique per cluster.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_TOKEN", default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Backend size quota in bytes before the NOSPACE alarm (0 = default 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: i64,
    /// `periodic` or `revision` automatic compaction.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic",
          value_parser = ["periodic", "revision"])]
    pub auto_compaction_mode: String,
    /// Retention for auto compaction: hours (or a duration like `30m`) or revisions; 0 = off.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Applied entries between raft snapshots (which let the log be purged).
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Time (ms) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (ms) for an election to time out.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Log level: debug, info, warn, error, panic or fatal.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Extra URLs serving /metrics and /health (besides the client URLs).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS", default_value = "")]
    pub listen_metrics_urls: String,
    /// Largest request a client may send.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: usize,
    /// Largest number of operations in one txn.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Log entries kept after a snapshot so slow followers can catch up without one.
    #[arg(long, env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES", default_value_t = 5000)]
    pub experimental_snapshot_catchup_entries: u64,
    /// Restart as a single-member cluster keeping the data (quorum-loss recovery).
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", default_value_t = false)]
    pub force_new_cluster: bool,
    /// Refuse reconfigurations that would lose quorum.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value_t = true)]
    pub strict_reconfig_check: bool,
    /// Accepted for compatibility; oxcd always logs to stderr.
    #[arg(long, env = "ETCD_LOGGER", default_value = "zap", hide = true)]
    pub logger: String,
    /// Accepted for compatibility; oxcd always logs to stderr.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default", hide = true)]
    pub log_outputs: String,
}

/// etcd's default backend quota.
pub const DEFAULT_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;

impl Config {
    /// The data directory, defaulting to `${name}.oxcd` as etcd defaults to `${name}.etcd`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.oxcd", self.name)))
    }

    /// The `--initial-cluster` actually in force.
    pub fn initial_cluster(&self) -> String {
        if self.initial_cluster == DEFAULT_INITIAL_CLUSTER && self.name != "default" {
            format!("{}={}", self.name, self.initial_advertise_peer_urls)
        } else {
            self.initial_cluster.clone()
        }
    }

    /// `--initial-cluster` as (name, peer URLs), in the order given.
    pub fn initial_members(&self) -> Result<Vec<(String, Vec<String>)>, String> {
        let mut members: Vec<(String, Vec<String>)> = Vec::new();
        for part in self.initial_cluster().split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, url) = part
                .split_once('=')
                .ok_or_else(|| format!("--initial-cluster: {part:?} is not name=url"))?;
            match members.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url.to_string()),
                None => members.push((name.to_string(), vec![url.to_string()])),
            }
        }
        Ok(members)
    }

    /// The backend quota in force.
    pub fn quota_bytes(&self) -> i64 {
        if self.quota_backend_bytes <= 0 {
            DEFAULT_QUOTA_BYTES
        } else {
            self.quota_backend_bytes
        }
    }

    /// openraft's election timeout bounds (ms) for `--election-timeout`. openraft's followers
    /// wait `max` (its leader lease, during which they refuse votes) plus a random timeout in
    /// `[min, max)` after the last heartbeat before campaigning: 1.25–1.5 × the flag, inside
    /// etcd's randomized [1, 2) ×.
    pub fn raft_election_timeouts(&self) -> (u64, u64) {
        (self.election_timeout / 2, self.election_timeout * 3 / 4)
    }

    /// The minimum lease TTL: etcd's `ceil(1.5 * election timeout)` in seconds.
    pub fn min_lease_ttl(&self) -> i64 {
        let ms = self.election_timeout.saturating_mul(3) / 2;
        ms.div_ceil(1000).max(1) as i64
    }

    /// Auto-compaction: how often and how much, or `None` when off.
    pub fn auto_compaction(&self) -> Result<Option<AutoCompaction>, String> {
        let r = self.auto_compaction_retention.trim();
        if r == "0" || r.is_empty() {
            return Ok(None);
        }
        if self.auto_compaction_mode == "revision" {
            let revs: i64 =
                r.parse().map_err(|_| format!("invalid --auto-compaction-retention {r:?}"))?;
            return Ok((revs > 0).then_some(AutoCompaction::Revisions(revs)));
        }
        let period = match r.parse::<u64>() {
            Ok(hours) => Duration::from_secs(hours * 3600),
            Err(_) => parse_duration(r)
                .ok_or_else(|| format!("invalid --auto-compaction-retention {r:?}"))?,
        };
        Ok((!period.is_zero()).then_some(AutoCompaction::Periodic(period)))
    }

    /// Splits a comma-separated URL flag.
    pub fn urls(flag: &str) -> Vec<String> {
        flag.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    }
}

/// How the automatic compactor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much wall-clock history.
    Periodic(Duration),
    /// Keep this many revisions.
    Revisions(i64),
}

/// Parses Go-style durations such as `30m`, `1h30m`, `90s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        total += value
            * match unit.as_str() {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_etcd() {
        let c = Config::parse_from(["oxcd"]);
        assert_eq!(c.data_dir(), PathBuf::from("default.oxcd"));
        assert_eq!(
            c.initial_members().unwrap(),
            vec![("default".into(), vec!["http://localhost:2380".into()])]
        );
        assert_eq!(c.min_lease_ttl(), 2);
        assert_eq!(c.auto_compaction().unwrap(), None);
    }

    #[test]
    fn renamed_member_derives_initial_cluster() {
        let c = Config::parse_from([
            "oxcd",
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:7001",
        ]);
        assert_eq!(c.initial_cluster(), "n1=http://127.0.0.1:7001");
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value_as_in_etcd() {
        let c = Config::parse_from([
            "oxcd",
            "--initial-cluster-state=new",
            "--name",
            "a",
            "--name=b",
            "--initial-cluster-state=existing",
        ]);
        assert_eq!(c.name, "b");
        assert_eq!(c.initial_cluster_state, "existing");
    }

    #[test]
    fn retention_parsing() {
        let c = Config::parse_from(["oxcd", "--auto-compaction-retention", "1h30m"]);
        assert_eq!(
            c.auto_compaction().unwrap(),
            Some(AutoCompaction::Periodic(Duration::from_secs(5400)))
        );
        let c = Config::parse_from([
            "oxcd",
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "100",
        ]);
        assert_eq!(c.auto_compaction().unwrap(), Some(AutoCompaction::Revisions(100)));
    }
}
