//! The member's configuration: etcd's own flags and `ETCD_*` environment variables, with
//! etcd's names and defaults, so existing scripts and unit files start oxcd unchanged.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

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
    /// Metrics detail: `basic`, or `extensive` which adds `grpc_server_handling_seconds`.
    #[arg(long, env = "ETCD_METRICS", default_value = "basic",
          value_parser = ["basic", "extensive"])]
    pub metrics: String,
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
    #[arg(long, env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub force_new_cluster: bool,
    /// Refuse reconfigurations that would lose quorum.
    #[arg(long, env = "ETCD_STRICT_RECONFIG_CHECK", default_value = "true", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub strict_reconfig_check: bool,
    /// How often idle watchers with progress notification hear the current revision.
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m",
          value_parser = parse_duration_flag)]
    pub experimental_watch_progress_notify_interval: Duration,
    /// etcd 3.6's name for the same interval; wins over the experimental one when given.
    #[arg(long, env = "ETCD_WATCH_PROGRESS_NOTIFY_INTERVAL", value_parser = parse_duration_flag)]
    pub watch_progress_notify_interval: Option<Duration>,
    /// Auth token type: `simple` (etcd's default) or
    /// `jwt,pub-key=<pem>,priv-key=<pem>,sign-method=<RS256|ES256|...>,ttl=<duration>`.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Seconds a simple token lives without being used.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// bcrypt cost of the password hashes made for `user add` and `user passwd`.
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
    /// Serve etcd's v2 keys API (`/v2/keys`, ...) on the client port, as etcd 3.4 does.
    #[arg(long, env = "ETCD_ENABLE_V2", default_value = "false", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub enable_v2: bool,
    /// Serve a CPU profile under `/debug/pprof/` on the client port (etcd's `--enable-pprof`),
    /// in the protobuf format `go tool pprof` reads.
    #[arg(long, env = "ETCD_ENABLE_PPROF", default_value = "false", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub enable_pprof: bool,
    /// Origins browsers may call the client port's HTTP endpoints from (CORS), comma-separated
    /// URLs or `*` for any, as etcd's `--cors`.
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub cors: String,
    /// Host names a plain-HTTP request may name in its `Host` header, comma-separated or `*`
    /// for any: etcd's guard against DNS rebinding (CVE-2018-5702).
    #[arg(long, env = "ETCD_HOST_WHITELIST", default_value = "*")]
    pub host_whitelist: String,
    /// Client and peer TLS (`--cert-file`, `--peer-auto-tls`, ...).
    #[command(flatten)]
    pub tls: crate::tls::TlsFlags,
    /// etcd's other flags: accepted so unit files written for etcd start oxcd unchanged.
    #[command(flatten)]
    pub accepted: AcceptedFlags,
    /// `zap` for etcd's JSON log lines; human-readable lines when unset.
    #[arg(long, env = "ETCD_LOGGER", default_value = "")]
    pub logger: String,
    /// Where logs go: `default`/`stderr`, `stdout` or file paths, comma-separated.
    #[arg(long, env = "ETCD_LOG_OUTPUTS", default_value = "default")]
    pub log_outputs: String,
}

/// Declares the etcd flags oxcd accepts without acting on them (see `AcceptedFlags`).
macro_rules! accepted_flags {
    ($($field:ident = $flag:literal, $env:literal;)*) => {
        /// etcd 3.4/3.5 flags that oxcd accepts but does not act on (TLS, discovery, proxy,
        /// tuning of bbolt, the WAL and gRPC, ...): a member started with etcd's command line
        /// starts, and `ignored` names each one given so the log says it had no effect.
        /// Boolean flags may be given bare (`--enable-v2`) or with a value, as in etcd.
        #[derive(clap::Args, Debug, Clone, Default)]
        pub struct AcceptedFlags {
            $(
                #[arg(long = $flag, env = $env, hide = true, num_args = 0..=1,
                      default_missing_value = "true")]
                $field: Option<String>,
            )*
        }

        impl AcceptedFlags {
            /// The accepted-but-ignored flags that were given, with their values.
            pub fn ignored(&self) -> Vec<(&'static str, &str)> {
                let mut given = Vec::new();
                $(
                    if let Some(value) = &self.$field {
                        given.push(($flag, value.as_str()));
                    }
                )*
                given
            }
        }
    };
}

accepted_flags! {
    wal_dir = "wal-dir", "ETCD_WAL_DIR";
    initial_election_tick_advance = "initial-election-tick-advance",
        "ETCD_INITIAL_ELECTION_TICK_ADVANCE";
    max_snapshots = "max-snapshots", "ETCD_MAX_SNAPSHOTS";
    max_wals = "max-wals", "ETCD_MAX_WALS";
    backend_bbolt_freelist_type = "backend-bbolt-freelist-type",
        "ETCD_BACKEND_BBOLT_FREELIST_TYPE";
    backend_batch_interval = "backend-batch-interval", "ETCD_BACKEND_BATCH_INTERVAL";
    backend_batch_limit = "backend-batch-limit", "ETCD_BACKEND_BATCH_LIMIT";
    grpc_keepalive_min_time = "grpc-keepalive-min-time", "ETCD_GRPC_KEEPALIVE_MIN_TIME";
    grpc_keepalive_interval = "grpc-keepalive-interval", "ETCD_GRPC_KEEPALIVE_INTERVAL";
    grpc_keepalive_timeout = "grpc-keepalive-timeout", "ETCD_GRPC_KEEPALIVE_TIMEOUT";
    socket_reuse_port = "socket-reuse-port", "ETCD_SOCKET_REUSE_PORT";
    socket_reuse_address = "socket-reuse-address", "ETCD_SOCKET_REUSE_ADDRESS";
    discovery = "discovery", "ETCD_DISCOVERY";
    discovery_fallback = "discovery-fallback", "ETCD_DISCOVERY_FALLBACK";
    discovery_proxy = "discovery-proxy", "ETCD_DISCOVERY_PROXY";
    discovery_srv = "discovery-srv", "ETCD_DISCOVERY_SRV";
    discovery_srv_name = "discovery-srv-name", "ETCD_DISCOVERY_SRV_NAME";
    pre_vote = "pre-vote", "ETCD_PRE_VOTE";
    v2_deprecation = "v2-deprecation", "ETCD_V2_DEPRECATION";
    enable_log_rotation = "enable-log-rotation", "ETCD_ENABLE_LOG_ROTATION";
    log_rotation_config_json = "log-rotation-config-json", "ETCD_LOG_ROTATION_CONFIG_JSON";
    experimental_enable_distributed_tracing = "experimental-enable-distributed-tracing",
        "ETCD_EXPERIMENTAL_ENABLE_DISTRIBUTED_TRACING";
    experimental_distributed_tracing_address = "experimental-distributed-tracing-address",
        "ETCD_EXPERIMENTAL_DISTRIBUTED_TRACING_ADDRESS";
    experimental_distributed_tracing_service_name =
        "experimental-distributed-tracing-service-name",
        "ETCD_EXPERIMENTAL_DISTRIBUTED_TRACING_SERVICE_NAME";
    experimental_distributed_tracing_instance_id =
        "experimental-distributed-tracing-instance-id",
        "ETCD_EXPERIMENTAL_DISTRIBUTED_TRACING_INSTANCE_ID";
    proxy = "proxy", "ETCD_PROXY";
    proxy_failure_wait = "proxy-failure-wait", "ETCD_PROXY_FAILURE_WAIT";
    proxy_refresh_interval = "proxy-refresh-interval", "ETCD_PROXY_REFRESH_INTERVAL";
    proxy_dial_timeout = "proxy-dial-timeout", "ETCD_PROXY_DIAL_TIMEOUT";
    proxy_write_timeout = "proxy-write-timeout", "ETCD_PROXY_WRITE_TIMEOUT";
    proxy_read_timeout = "proxy-read-timeout", "ETCD_PROXY_READ_TIMEOUT";
    experimental_initial_corrupt_check = "experimental-initial-corrupt-check",
        "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK";
    experimental_corrupt_check_time = "experimental-corrupt-check-time",
        "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME";
    experimental_enable_v2v3 = "experimental-enable-v2v3", "ETCD_EXPERIMENTAL_ENABLE_V2V3";
    experimental_enable_lease_checkpoint = "experimental-enable-lease-checkpoint",
        "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT";
    experimental_enable_lease_checkpoint_persist =
        "experimental-enable-lease-checkpoint-persist",
        "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT_PERSIST";
    experimental_compaction_batch_limit = "experimental-compaction-batch-limit",
        "ETCD_EXPERIMENTAL_COMPACTION_BATCH_LIMIT";
    experimental_compaction_sleep_interval = "experimental-compaction-sleep-interval",
        "ETCD_EXPERIMENTAL_COMPACTION_SLEEP_INTERVAL";
    experimental_peer_skip_client_san_verification =
        "experimental-peer-skip-client-san-verification",
        "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION";
    experimental_warning_apply_duration = "experimental-warning-apply-duration",
        "ETCD_EXPERIMENTAL_WARNING_APPLY_DURATION";
    experimental_txn_mode_write_with_shared_buffer =
        "experimental-txn-mode-write-with-shared-buffer",
        "ETCD_EXPERIMENTAL_TXN_MODE_WRITE_WITH_SHARED_BUFFER";
    experimental_bootstrap_defrag_threshold_megabytes =
        "experimental-bootstrap-defrag-threshold-megabytes",
        "ETCD_EXPERIMENTAL_BOOTSTRAP_DEFRAG_THRESHOLD_MEGABYTES";
    experimental_memory_mlock = "experimental-memory-mlock", "ETCD_EXPERIMENTAL_MEMORY_MLOCK";
    experimental_max_learners = "experimental-max-learners", "ETCD_EXPERIMENTAL_MAX_LEARNERS";
    experimental_wait_cluster_ready_timeout = "experimental-wait-cluster-ready-timeout",
        "ETCD_EXPERIMENTAL_WAIT_CLUSTER_READY_TIMEOUT";
    experimental_stop_grpc_service_on_defrag = "experimental-stop-grpc-service-on-defrag",
        "ETCD_EXPERIMENTAL_STOP_GRPC_SERVICE_ON_DEFRAG";
    experimental_downgrade_check_time = "experimental-downgrade-check-time",
        "ETCD_EXPERIMENTAL_DOWNGRADE_CHECK_TIME";
    experimental_compact_hash_check_enabled = "experimental-compact-hash-check-enabled",
        "ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED";
    experimental_compact_hash_check_time = "experimental-compact-hash-check-time",
        "ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_TIME";
    unsafe_no_fsync = "unsafe-no-fsync", "ETCD_UNSAFE_NO_FSYNC";
    config_file = "config-file", "ETCD_CONFIG_FILE";
    debug = "debug", "ETCD_DEBUG";
    log_package_levels = "log-package-levels", "ETCD_LOG_PACKAGE_LEVELS";
    experimental_backend_bbolt_freelist_type = "experimental-backend-bbolt-freelist-type",
        "ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE";
    max_concurrent_streams = "max-concurrent-streams", "ETCD_MAX_CONCURRENT_STREAMS";
    enable_grpc_gateway = "enable-grpc-gateway", "ETCD_ENABLE_GRPC_GATEWAY";
}

/// Go's `strconv.ParseBool`, which etcd's boolean flags use.
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("invalid boolean value {other:?}")),
    }
}

/// A Go duration flag (`10m`, `1h30m`, `500ms`).
fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    parse_duration(s.trim()).ok_or_else(|| format!("invalid duration {s:?}"))
}

/// The longest `--auto-compaction-retention` accepted: longer periods would overflow the
/// compactor's clock arithmetic, and no history needs keeping for more than ten years.
pub const MAX_RETENTION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// etcd's default backend quota.
pub const DEFAULT_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;

impl Config {
    /// The progress-notify interval under either of etcd's names (3.6's, or 3.4/3.5's
    /// experimental one), so a 3.6 command line or environment works unchanged.
    pub fn progress_notify_interval(&self) -> Duration {
        self.watch_progress_notify_interval
            .unwrap_or(self.experimental_watch_progress_notify_interval)
    }

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

    /// The election timing bounds (ms) for `--election-timeout`, kept by the pre-vote
    /// elector (`raft::pre_vote`): a voter grants a pre-vote only `max` after it last heard
    /// from a leader, and a follower asks `max` plus one heartbeat plus a random share of
    /// `max - min` after it: 0.85–1.1 × the flag with etcd's 10:1 ratio (etcd campaigns after
    /// a randomized [1, 2) ×).
    pub fn raft_election_timeouts(&self) -> (u64, u64) {
        (self.election_timeout / 2, self.election_timeout * 3 / 4)
    }

    /// openraft's own `election_timeout_min`/`max` (ms): two and three heartbeats. With
    /// openraft's election timer off they only bound its vote calls (`min`) and its leader
    /// lease (`max`: how long after an append a follower refuses real votes). Healthy leaders
    /// are protected by the pre-vote's longer lease instead, so openraft's can be short, and a
    /// move-leader waits only for it (etcd's `--election-timeout` lease would cost 0.75 × the
    /// flag per transfer). Never longer than `raft_election_timeouts`: `election_timeout` is
    /// at least five heartbeats.
    pub fn openraft_timeouts(&self) -> (u64, u64) {
        (self.heartbeat_interval * 2, self.heartbeat_interval * 3)
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
            Ok(hours) => hours.checked_mul(3600).map(Duration::from_secs),
            Err(_) => parse_duration(r),
        }
        .ok_or_else(|| format!("invalid --auto-compaction-retention {r:?}"))?;
        if period > MAX_RETENTION {
            return Err(format!(
                "invalid --auto-compaction-retention {r:?}: at most {}h (ten years)",
                MAX_RETENTION.as_secs() / 3600
            ));
        }
        Ok((!period.is_zero()).then_some(AutoCompaction::Periodic(period)))
    }

    /// Checks flag values that parse but cannot work, so a bad value stops the member at
    /// start-up with a clear message instead of failing later inside a background task.
    pub fn validate(&self) -> Result<(), String> {
        self.auto_compaction()?;
        if self.heartbeat_interval == 0 {
            return Err("--heartbeat-interval must be greater than 0".into());
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            ));
        }
        if self.election_timeout > 50_000 {
            return Err(format!(
                "--election-timeout[{}ms] is too long, and should be set less than 50 seconds",
                self.election_timeout
            ));
        }
        if self.max_request_bytes == 0 {
            return Err("--max-request-bytes must be greater than 0".into());
        }
        // bcrypt's MinCost and MaxCost, which etcd checks.
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(format!("--bcrypt-cost: invalid bcrypt-cost {}", self.bcrypt_cost));
        }
        let token_type = self.auth_token.split(',').next().unwrap_or_default();
        if token_type != "simple" && token_type != "jwt" {
            return Err(format!("--auth-token: unknown token type: {token_type}"));
        }
        let origins: Vec<String> =
            Config::urls(&self.cors).into_iter().filter(|o| o != "*").collect();
        if !origins.is_empty() {
            check_urls(&origins)
                .map_err(|e| format!("invalid value {:?} for flag -cors: {e}", self.cors))?;
        }
        crate::tls::ciphers::check(&self.tls.cipher_suite_names())?;
        self.tls.version_range()?;
        if self.progress_notify_interval().is_zero() {
            return Err("--watch-progress-notify-interval must be greater than 0".into());
        }
        Ok(())
    }

    /// Splits a comma-separated URL flag.
    pub fn urls(flag: &str) -> Vec<String> {
        flag.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    }
}

/// etcd's `types.NewURLs` checks, with its messages: URL lists in flags and in v2 member
/// requests are refused with the words etcd uses.
pub fn check_urls(urls: &[String]) -> Result<(), String> {
    if urls.is_empty() {
        return Err("no valid URLs given".into());
    }
    for url in urls {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!("URL scheme must be http, https, unix, or unixs: {url}"));
        };
        if !["http", "https", "unix", "unixs"].contains(&scheme) {
            return Err(format!("URL scheme must be http, https, unix, or unixs: {url}"));
        }
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let has_port = host.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'));
        if !has_port {
            return Err(format!("URL address does not have the form \"host:port\": {url}"));
        }
        if !path.is_empty() {
            return Err(format!("URL must not contain a path: {url}"));
        }
    }
    Ok(())
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
    fn etcd_flags_are_accepted() {
        let c = Config::try_parse_from([
            "oxcd",
            "--enable-v2=false",
            "--wal-dir=/tmp/w",
            "--pre-vote",
            "true",
            "--force-new-cluster=false",
            "--strict-reconfig-check=0",
            "--metrics",
            "extensive",
            "--experimental-watch-progress-notify-interval=5s",
        ])
        .expect("etcd's flags parse");
        assert!(!c.force_new_cluster);
        assert!(!c.strict_reconfig_check);
        assert_eq!(c.progress_notify_interval(), Duration::from_secs(5));
        let v36 = Config::try_parse_from(["oxcd", "--watch-progress-notify-interval=250ms"])
            .expect("etcd 3.6's flag name parses");
        assert_eq!(v36.progress_notify_interval(), Duration::from_millis(250));
        let ignored = c.accepted.ignored();
        assert!(!c.enable_v2);
        assert!(Config::try_parse_from(["oxcd", "--enable-v2"]).unwrap().enable_v2);
        assert!(ignored.contains(&("pre-vote", "true")), "{ignored:?}");
        assert_eq!(c.metrics, "extensive");
        assert!(Config::try_parse_from(["oxcd", "--force-new-cluster"]).unwrap().force_new_cluster);
        assert!(Config::try_parse_from(["oxcd", "--no-such-flag"]).is_err());
    }

    #[test]
    fn bad_values_are_refused_before_start() {
        let c = Config::parse_from(["oxcd", "--auto-compaction-retention", "99999999999999"]);
        let err = c.validate().unwrap_err();
        assert!(err.contains("--auto-compaction-retention"), "{err}");
        let c = Config::parse_from(["oxcd", "--auto-compaction-retention", "18446744073709551"]);
        assert!(c.validate().is_err());
        let c = Config::parse_from(["oxcd", "--election-timeout=100"]);
        assert!(c.validate().unwrap_err().contains("5 times"));
        assert!(Config::parse_from(["oxcd"]).validate().is_ok());
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

    #[test]
    fn peer_urls_are_checked_with_etcds_messages() {
        let check = |u: &str| check_urls(&[u.to_string()]);
        assert_eq!(check("http://127.0.0.1:1"), Ok(()));
        assert_eq!(check("https://[::1]:2380"), Ok(()));
        assert_eq!(
            check("nope"),
            Err("URL scheme must be http, https, unix, or unixs: nope".into())
        );
        assert_eq!(
            check("http://host"),
            Err("URL address does not have the form \"host:port\": http://host".into())
        );
        assert_eq!(check("http://h:1/x"), Err("URL must not contain a path: http://h:1/x".into()));
        assert_eq!(check_urls(&[]), Err("no valid URLs given".into()));
    }
}
