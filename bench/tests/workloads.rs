//! Every oxcd-bench workload, run as a process against a real oxcd member (or etcd 3.5.1 with
//! `OXCD_E2E_TARGET=etcd`): the report must count exactly the requests asked for, none
//! failed, and what the writes claim to have written must be in the store.

use std::process::Command;

use etcd_client::GetOptions;
use oxcd_e2e::client::{bounded, connect, start_target};
use oxcd_e2e::Member;
use serde_json::Value;

/// Runs `oxcd-bench --json` with `args` against `member`; returns the parsed report.
fn bench(member: &Member, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd-bench"))
        .args(["--endpoints", &member.client_addr(), "--timeout", "10", "--json"])
        .args(args)
        .output()
        .expect("run oxcd-bench");
    assert!(
        out.status.success(),
        "oxcd-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("oxcd-bench {args:?} printed no JSON report ({e}): {:?}", out.stdout)
    })
}

/// Asserts the report is `workload`'s, counts `requests` successes and no failures, and has
/// etcd's percentiles.
fn assert_report(report: &Value, workload: &str, requests: u64) {
    assert_eq!(report["workload"], workload, "{report}");
    assert_eq!(report["requests"], requests, "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");
    for p in ["p10", "p50", "p90", "p99", "p99.9"] {
        assert!(report["percentiles"][p].as_f64().is_some_and(|s| s > 0.0), "{p}: {report}");
    }
    assert!(report["requests_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_reports_what_it_ran() {
    let member = tokio::task::spawn_blocking(start_target).await.expect("start member");
    let mut client = connect(&member.client_url()).await;

    let put = ["put", "--total", "200", "--clients", "10", "--conns", "2"];
    let keys = ["--key-space-size", "200", "--sequential-keys", "--val-size", "64"];
    assert_report(&bench(&member, &[&put[..], &keys[..]].concat()), "put", 200);
    let all = GetOptions::new().with_all_keys().with_count_only();
    let stored = bounded("count keys", client.get(vec![0u8], Some(all))).await.expect("count");
    assert_eq!(stored.count(), 200, "sequential keys cover the key space once");

    for consistency in ["l", "s"] {
        let args = ["range", "--consistency", consistency, "--total", "100", "--clients", "10"];
        let report = bench(&member, &[&args[..], &["--key-space-size", "200"]].concat());
        assert_report(&report, "range", 100);
    }
    let txn_put = ["txn-put", "--total", "50", "--clients", "5", "--key-space-size", "200"];
    assert_report(&bench(&member, &txn_put), "txn-put", 50);
    let mixed = ["txn-mixed", "--total", "100", "--clients", "5", "--rw-ratio", "4"];
    assert_report(
        &bench(&member, &[&mixed[..], &["--key-space-size", "200"]].concat()),
        "txn-mixed",
        100,
    );

    // Watch fan-out: every put reaches every watcher.
    let watch = ["watch", "--watchers", "20", "--streams", "4", "--put-total", "5"];
    assert_report(&bench(&member, &watch), "watch", 100);
    let latency =
        ["watch-latency", "--put-total", "5", "--streams", "2", "--watchers-per-stream", "3"];
    let report = bench(&member, &latency);
    assert_eq!(report["workload"], "watch-latency", "{report}");
    assert_eq!(report["errors_total"], 0, "{report}");

    // Leases: 20 granted, each kept alive twice; the grants are real.
    let lease =
        ["lease-keepalive", "--total", "20", "--rounds", "2", "--clients", "4", "--ttl", "60"];
    assert_report(&bench(&member, &lease), "lease-keepalive", 40);
    let leases = bounded("list leases", client.leases()).await.expect("lease list");
    assert!(leases.leases().len() >= 20, "{} leases listed", leases.leases().len());
}

#[test]
fn text_report_has_etcds_sections() {
    let member = start_target();
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd-bench"))
        .args(["--endpoints", &member.client_addr(), "put", "--total", "20", "--clients", "2"])
        .output()
        .expect("run oxcd-bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "Summary:",
        "Requests/sec:",
        "Response time histogram:",
        "Latency distribution:",
        "99.9% in",
    ] {
        assert!(text.contains(section), "missing {section:?} in:\n{text}");
    }
}
