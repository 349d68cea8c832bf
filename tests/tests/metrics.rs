//! Differential test of `/metrics`: the same small workload against etcd 3.5.1 and oxcd, then
//! the set of metric families, their types and their label names are compared. Every
//! difference is listed below with its reason; a difference not listed (or a listed one that
//! no longer differs) fails the test, so the list stays the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use oxcd_e2e::http::get;
use oxcd_e2e::ports::free_port;
use oxcd_e2e::{Cluster, CtlVersion, Kind, Member, MemberConfig};

/// etcd families oxcd does not expose, and why.
const ABSENT_IN_OXCD: &[(&str, &str)] = &[
    ("etcd_debugging_disk_backend_commit_rebalance_duration_seconds", "bbolt B+tree rebalance; RocksDB has none"),
    ("etcd_debugging_disk_backend_commit_spill_duration_seconds", "bbolt B+tree spill; RocksDB has none"),
    ("etcd_debugging_disk_backend_commit_write_duration_seconds", "bbolt page write; the whole RocksDB write is etcd_disk_backend_commit_duration_seconds"),
    ("etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds", "bbolt compaction batches; RocksDB compacts in the background"),
    ("etcd_debugging_snap_save_marshalling_duration_seconds", "oxcd encodes and writes a raft snapshot in one pass, timed whole in etcd_debugging_snap_save_total_duration_seconds"),
    ("etcd_grpc_proxy_cache_hits_total", "grpc-proxy families: oxcd has no grpc-proxy"),
    ("etcd_grpc_proxy_cache_keys_total", "grpc-proxy families: oxcd has no grpc-proxy"),
    ("etcd_grpc_proxy_cache_misses_total", "grpc-proxy families: oxcd has no grpc-proxy"),
    ("etcd_grpc_proxy_events_coalescing_total", "grpc-proxy families: oxcd has no grpc-proxy"),
    ("etcd_grpc_proxy_watchers_coalescing_total", "grpc-proxy families: oxcd has no grpc-proxy"),
    ("etcd_mvcc_db_open_read_transactions", "bbolt read transactions; RocksDB reads use snapshots"),
    ("etcd_server_go_version", "oxcd is not written in Go"),
    ("etcd_server_heartbeat_send_failures_total", "openraft sends heartbeats as append-entries; their failures count in etcd_network_peer_sent_failures_total"),
    ("etcd_snap_fsync_duration_seconds", "the built raft snapshot's sync is part of that one pass (etcd_debugging_snap_save_total_duration_seconds)"),
    ("os_fd_limit", "Go-only duplicate of process_max_fds"),
    ("os_fd_used", "Go-only duplicate of process_open_fds"),
    ("process_virtual_memory_max_bytes", "the Rust prometheus crate's process collector has no such gauge"),
    ("promhttp_metric_handler_requests_in_flight", "Go's promhttp handler's own metrics"),
    ("promhttp_metric_handler_requests_total", "Go's promhttp handler's own metrics"),
];

/// Families etcd 3.6 adds that oxcd does not expose, and why (the 3.5 list holds as well).
const ABSENT_IN_OXCD_36: &[(&str, &str)] = &[
    ("etcd_server_feature_enabled", "etcd 3.6's feature gates; oxcd has none to report"),
    (
        "process_network_receive_bytes_total",
        "Go's newer process collector; the Rust prometheus crate's has no network counters",
    ),
    (
        "process_network_transmit_bytes_total",
        "Go's newer process collector; the Rust prometheus crate's has no network counters",
    ),
];

/// Families oxcd has and etcd 3.6 has not, and why.
const ONLY_IN_OXCD_36: &[(&str, &str)] = &[(
    "etcd_debugging_mvcc_range_total",
    "etcd 3.6 dropped this debugging twin of etcd_mvcc_range_total; oxcd keeps it for 3.5's dashboards",
)];

/// Families oxcd has and etcd has not (besides oxcd's own `oxcd_*`), and why.
const ONLY_IN_OXCD: &[(&str, &str)] = &[
    ("process_threads", "the Rust process collector reports threads; Go's has no such gauge"),
    (
        "etcd_disk_wal_write_duration_seconds",
        "etcd 3.6's (see one_member_exposes_etcd_36s_families)",
    ),
    ("etcd_network_known_peers", "etcd 3.6's (see one_member_exposes_etcd_36s_families)"),
    ("etcd_server_range_duration_seconds", "etcd 3.6's (see one_member_exposes_etcd_36s_families)"),
];

/// Families whose type or label names differ, and why.
const SHAPE_DIFFERENCES: &[(&str, &str)] = &[];

/// One family's shape: its type and the label names its samples carry (without `le`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    kind: String,
    labels: BTreeSet<String>,
}

/// Reads the families of a text exposition, Go's runtime families left out (`go_*`).
fn families(text: &str) -> BTreeMap<String, Shape> {
    let mut out: BTreeMap<String, Shape> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                if !name.starts_with("go_") {
                    let shape = Shape { kind: kind.to_string(), labels: BTreeSet::new() };
                    out.insert(name.to_string(), shape);
                }
            }
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (sample, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.split_once('}').map(|p| p.0).unwrap_or("")),
            None => (line.split_whitespace().next().unwrap_or(""), ""),
        };
        let family = [sample, sample.trim_end_matches("_bucket"), sample.trim_end_matches("_sum")]
            .into_iter()
            .chain([sample.trim_end_matches("_count")])
            .find(|n| out.contains_key(*n))
            .map(str::to_string);
        let Some(family) = family else { continue };
        let names = label_names(labels);
        if let Some(shape) = out.get_mut(&family) {
            shape.labels.extend(names.into_iter().filter(|n| n != "le"));
        }
    }
    out
}

/// The label names of a `name="value",...` list (values may hold commas and escaped quotes).
fn label_names(labels: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = labels;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').trim().to_string());
        let mut escaped = false;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    names
}

/// The workload of issue 16: puts, a range, a delete, a txn, a lease, a watch, a defrag.
fn workload(ctl: &oxcd_e2e::Etcdctl) {
    ctl.run(&["put", "a", "1"]).assert_success();
    ctl.run(&["put", "b", "2"]).assert_success();
    ctl.run(&["get", "a"]).assert_success();
    ctl.run(&["del", "b"]).assert_success();
    ctl.run_input(&["txn"], "\nput c 3\nput d 4\n\n\n").assert_success();
    let grant = ctl.run(&["lease", "grant", "60"]);
    grant.assert_success();
    let lease = grant.stdout.split_whitespace().nth(1).unwrap_or("0").to_string();
    ctl.run(&["put", "--lease", &lease, "e", "5"]).assert_success();
    let mut watch = ctl.spawn(&["watch", "w"]);
    // The watch may not be registered yet when the first put lands: put until it sees one.
    let seen = (0..20).any(|_| {
        ctl.run(&["put", "w", "1"]).assert_success();
        watch.next_line(Duration::from_millis(500)).is_some()
    });
    assert!(seen, "the watch saw nothing");
    drop(watch);
    ctl.run(&["defrag"]).assert_success();
}

/// Scrapes `addr` until `ready` holds on the families (bounded), and returns them.
fn scrape_until(
    addr: &str,
    ready: impl Fn(&BTreeMap<String, Shape>) -> bool,
) -> BTreeMap<String, Shape> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fams = get(addr, "/metrics").map(|(_, body)| families(&body));
        match fams {
            Some(f) if ready(&f) => return f,
            Some(f) if Instant::now() > deadline => return f,
            _ if Instant::now() > deadline => panic!("no /metrics on {addr}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Compares the two sets of families, returning every difference not explained above.
fn unexplained(etcd: &BTreeMap<String, Shape>, oxcd: &BTreeMap<String, Shape>) -> Vec<String> {
    unexplained_with(etcd, oxcd, ABSENT_IN_OXCD, &[])
}

/// `unexplained`, with the absences and extras of another etcd version listed too.
fn unexplained_with(
    etcd: &BTreeMap<String, Shape>,
    oxcd: &BTreeMap<String, Shape>,
    absent: &[(&str, &str)],
    only: &[(&str, &str)],
) -> Vec<String> {
    let listed = |list: &[(&str, &str)], name: &str| list.iter().any(|(n, _)| *n == name);
    let mut problems = Vec::new();
    for (name, shape) in etcd {
        match oxcd.get(name) {
            None if !listed(ABSENT_IN_OXCD, name) && !listed(absent, name) => {
                problems.push(format!("missing in oxcd: {name} {shape:?}"))
            }
            Some(ours) if ours != shape && !listed(SHAPE_DIFFERENCES, name) => {
                problems.push(format!("{name}: etcd {shape:?}, oxcd {ours:?}"))
            }
            _ => {}
        }
    }
    for name in oxcd.keys() {
        let ours = name.starts_with("oxcd_") || listed(ONLY_IN_OXCD, name) || listed(only, name);
        if !etcd.contains_key(name) && !ours {
            problems.push(format!("only in oxcd, unexplained: {name}"));
        }
    }
    problems
}

#[test]
fn one_member_exposes_etcds_families() {
    let mut scraped = Vec::new();
    for kind in [Kind::Etcd35, Kind::Oxcd] {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let cfg = MemberConfig::new(kind)
            .arg(format!("--listen-metrics-urls=http://{metrics_addr}"))
            .arg("--metrics=basic");
        let member = Member::start_with(cfg);
        workload(&member.ctl(CtlVersion::V35));
        // Counters appear once the workload's effects are applied and observed.
        let fams = scrape_until(&metrics_addr, |f| f.contains_key("etcd_mvcc_put_total"));
        // The metrics listener also answers /health, as etcd's does.
        let health = get(&metrics_addr, "/health").map(|(code, _)| code);
        assert_eq!(health, Some(200), "{kind}: /health on the metrics listener");
        scraped.push(fams);
    }
    let (etcd, oxcd) = (&scraped[0], &scraped[1]);
    let problems = unexplained(etcd, oxcd);
    assert!(problems.is_empty(), "unexplained differences:\n{}", problems.join("\n"));
    // A listed difference that no longer differs must leave the list.
    for (name, _) in ABSENT_IN_OXCD {
        assert!(etcd.contains_key(*name), "{name} is listed but etcd 3.5.1 lacks it too");
        assert!(!oxcd.contains_key(*name), "{name} is listed as absent but oxcd has it");
    }
    let common = etcd.keys().filter(|n| oxcd.contains_key(*n)).count();
    eprintln!("etcd 3.5.1: {} families, oxcd: {}, common: {common}", etcd.len(), oxcd.len());
}

#[test]
fn one_member_exposes_etcd_36s_families() {
    let mut scraped = Vec::new();
    for kind in [Kind::Etcd36, Kind::Oxcd] {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let cfg = MemberConfig::new(kind)
            .arg(format!("--listen-metrics-urls=http://{metrics_addr}"))
            .arg("--metrics=basic");
        let member = Member::start_with(cfg);
        workload(&member.ctl(CtlVersion::V35));
        scraped.push(scrape_until(&metrics_addr, |f| f.contains_key("etcd_mvcc_put_total")));
    }
    let (etcd, oxcd) = (&scraped[0], &scraped[1]);
    let problems = unexplained_with(etcd, oxcd, ABSENT_IN_OXCD_36, ONLY_IN_OXCD_36);
    assert!(problems.is_empty(), "unexplained differences:\n{}", problems.join("\n"));
    for (name, _) in ABSENT_IN_OXCD_36 {
        assert!(etcd.contains_key(*name), "{name} is listed but etcd 3.6 lacks it too");
        assert!(!oxcd.contains_key(*name), "{name} is listed as absent but oxcd has it");
    }
    let common = etcd.keys().filter(|n| oxcd.contains_key(*n)).count();
    eprintln!("etcd 3.6: {} families, oxcd: {}, common: {common}", etcd.len(), oxcd.len());
}

/// Series whose value the workload fixes, so etcd's and oxcd's must be equal once the
/// watch is gone: lease churn, live keys, one defrag, the watch gauges back at zero, the
/// version etcdctl announces, nothing in flight.
const SAME_VALUE: &[&str] = &[
    "etcd_debugging_lease_granted_total",
    "etcd_debugging_lease_revoked_total",
    "etcd_debugging_lease_ttl_total_count",
    "etcd_debugging_lease_ttl_total_sum",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_pending_events_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "etcd_disk_backend_defrag_duration_seconds_count",
    "etcd_disk_defrag_inflight",
    "etcd_server_snapshot_apply_in_progress_total",
    "etcd_debugging_mvcc_compact_revision",
    "etcd_mvcc_hash_rev_duration_seconds_count",
];

/// The value of the series written exactly as `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

/// The values of `SAME_VALUE` and whether the current revision matches what the member
/// reports to etcdctl (the revision is not fixed: the watch loop puts until seen).
fn settled_values(addr: &str, revision: i64) -> BTreeMap<&'static str, Option<f64>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = get(addr, "/metrics").map(|(_, body)| body).unwrap_or_default();
        let values: BTreeMap<_, _> = SAME_VALUE.iter().map(|s| (*s, value(&text, s))).collect();
        let current = value(&text, "etcd_debugging_mvcc_current_revision");
        let settled = values.get("etcd_debugging_mvcc_watcher_total") == Some(&Some(0.0))
            && current == Some(revision as f64);
        if settled || Instant::now() > deadline {
            return values;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_workload_gives_etcds_values() {
    let mut seen = Vec::new();
    for kind in [Kind::Etcd35, Kind::Oxcd] {
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let cfg =
            MemberConfig::new(kind).arg(format!("--listen-metrics-urls=http://{metrics_addr}"));
        let member = Member::start_with(cfg);
        let ctl = member.ctl(CtlVersion::V35);
        workload(&ctl);
        ctl.run(&["compact", "3"]).assert_success();
        ctl.run(&["endpoint", "hashkv"]).assert_success();
        let status = ctl.run(&["endpoint", "status", "-w", "json"]);
        status.assert_success();
        let revision: i64 = status
            .stdout
            .split("\"revision\":")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .expect("a revision in endpoint status");
        let values = settled_values(&metrics_addr, revision);
        // etcdctl 3.5 announces its API version; both count its calls under it.
        let text = get(&metrics_addr, "/metrics").map(|(_, body)| body).unwrap_or_default();
        let announced =
            r#"etcd_server_client_requests_total{client_api_version="3.5",type="unary"}"#;
        assert!(value(&text, announced).is_some_and(|v| v > 0.0), "{kind}: {announced}");
        seen.push(values);
    }
    let missing: Vec<_> = seen[0].iter().filter(|(_, v)| v.is_none()).collect();
    assert!(missing.is_empty(), "series etcd 3.5.1 lacks: {missing:?}");
    assert_eq!(seen[0], seen[1], "etcd 3.5.1 (left) and oxcd (right) after the same workload");
}

#[test]
fn extensive_metrics_add_the_handling_histogram() {
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let cfg = MemberConfig::new(Kind::Oxcd)
        .arg(format!("--listen-metrics-urls=http://{metrics_addr}"))
        .arg("--metrics=extensive");
    let member = Member::start_with(cfg);
    member.ctl(CtlVersion::V35).run(&["put", "a", "1"]).assert_success();
    let fams = scrape_until(&metrics_addr, |f| f.contains_key("grpc_server_handling_seconds"));
    let shape = fams.get("grpc_server_handling_seconds").expect("the histogram with extensive");
    assert_eq!(shape.kind, "histogram");
    let want: BTreeSet<String> =
        ["grpc_method", "grpc_service", "grpc_type"].iter().map(|s| s.to_string()).collect();
    assert_eq!(shape.labels, want);
}

#[test]
fn three_members_expose_the_peer_families() {
    let mut scraped = Vec::new();
    for kind in [Kind::Etcd35, Kind::Oxcd] {
        let addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let cluster = Cluster::try_start(kind, 3, |cfg| {
            let i: usize = cfg.name.trim_start_matches('n').parse().unwrap_or(1);
            cfg.arg(format!("--listen-metrics-urls=http://{}", addrs[i - 1]))
        })
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        workload(&cluster.ctl(CtlVersion::V35));
        // The union over the members: oxcd's followers only answer raft RPCs, so the
        // families of the sending side appear on the leader only (etcd's on every member).
        let deadline = Instant::now() + Duration::from_secs(30);
        let fams = loop {
            let mut union = BTreeMap::new();
            for addr in &addrs {
                union.extend(scrape_until(addr, |_| true));
            }
            let ready = union.contains_key("etcd_network_peer_round_trip_time_seconds")
                && union.contains_key("etcd_network_peer_sent_bytes_total");
            if ready || Instant::now() > deadline {
                break union;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        scraped.push(fams);
    }
    let (etcd, oxcd) = (&scraped[0], &scraped[1]);
    let problems = unexplained(etcd, oxcd);
    eprintln!("3 members: etcd {} families, oxcd {}", etcd.len(), oxcd.len());
    assert!(problems.is_empty(), "unexplained differences:\n{}", problems.join("\n"));
    for name in [
        "etcd_network_peer_round_trip_time_seconds",
        "etcd_network_peer_sent_bytes_total",
        "etcd_network_peer_received_bytes_total",
    ] {
        let (theirs, ours) = (etcd.get(name), oxcd.get(name));
        assert!(ours.is_some(), "oxcd lacks {name}");
        if let Some(theirs) = theirs {
            assert_eq!(Some(theirs), ours, "{name}");
        }
    }
}

/// The value of the first sample of `family` whose labels contain every `label="value"` of
/// `labels`.
fn labelled(text: &str, family: &str, labels: &[String]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want.as_str())))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn the_leader_reports_a_killed_peer_inactive_and_disconnected() {
    let addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut cluster = Cluster::try_start(Kind::Oxcd, 3, |cfg| {
        let i: usize = cfg.name.trim_start_matches('n').parse().unwrap_or(1);
        cfg.arg(format!("--listen-metrics-urls=http://{}", addrs[i - 1]))
    })
    .expect("an oxcd cluster");
    cluster.ctl(CtlVersion::V35).run(&["put", "a", "1"]).assert_success();
    let scrape = |addr: &str| get(addr, "/metrics").map(|(_, body)| body).unwrap_or_default();
    let id_of = |text: &str| -> Option<String> {
        let line = text.lines().find(|l| l.starts_with("etcd_server_id{"))?;
        Some(line.split('"').nth(1)?.to_string())
    };
    // The leader and one follower, as the members report them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (leader, follower) = loop {
        let texts: Vec<String> = addrs.iter().map(|a| scrape(a)).collect();
        let leader = texts.iter().position(|t| value(t, "etcd_server_is_leader") == Some(1.0));
        if let Some(l) = leader {
            let f = (l + 1) % 3;
            let remote = [format!("Remote=\"{}\"", id_of(&texts[f]).expect("an id"))];
            if labelled(&texts[l], "etcd_network_active_peers", &remote) == Some(1.0) {
                break (l, f);
            }
        }
        assert!(Instant::now() < deadline, "no leader with an active peer");
        std::thread::sleep(Duration::from_millis(200));
    };
    let remote = [format!("Remote=\"{}\"", id_of(&scrape(&addrs[follower])).expect("an id"))];
    cluster.members[follower].kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(&addrs[leader]);
        let active = labelled(&text, "etcd_network_active_peers", &remote);
        let lost = labelled(&text, "etcd_network_disconnected_peers_total", &remote);
        if active == Some(0.0) && lost == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "active {active:?}, disconnected {lost:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
