//! The alert rules and the dashboard in `monitoring/` are checked with Prometheus's own tool,
//! `promtool` (Debian's `prometheus` package), so a rule or panel that Prometheus or Grafana
//! would reject fails the suite instead of a user's deployment; and a real Prometheus scrapes
//! a real 3-member cluster and must fire the outage alerts when members die and resolve them
//! when they return.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oxcd_e2e::bins::workspace_root;
use oxcd_e2e::{Cluster, Kind};

/// The `monitoring/` directory of the repository.
fn monitoring_dir() -> PathBuf {
    workspace_root().join("monitoring")
}

/// Runs `promtool` with `args` in `dir` and fails the test with its output unless it succeeds.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is installed (scripts/install-deps.sh installs Debian's prometheus)");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_are_valid() {
    let text = promtool(&monitoring_dir(), &["check", "rules", "alerts.yaml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn alert_rule_unit_tests_pass() {
    let text = promtool(&monitoring_dir(), &["test", "rules", "alerts_test.yaml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every `expr` string anywhere in a dashboard JSON document.
fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_query_parses() {
    let path = monitoring_dir().join("dashboard.json");
    let text = std::fs::read_to_string(&path).expect("monitoring/dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "only {} queries found in the dashboard", queries.len());
    // Grafana substitutes its template variables before Prometheus sees a query; a regex
    // matching anything stands in for them. Each query becomes a recording rule, which
    // `promtool check rules` parses as PromQL.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        let query = query.replace("$job", ".*").replace("$instance", ".*");
        let quoted = serde_json::to_string(&query).expect("a string serializes");
        rules.push_str(&format!("      - record: dashboard:query_{i}\n        expr: {quoted}\n"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("dashboard_rules.yaml"), rules).expect("write rules");
    let text = promtool(dir.path(), &["check", "rules", "dashboard_rules.yaml"]);
    assert!(text.contains(&format!("{} rules found", queries.len())), "{text}");
}

/// The alert rules with every `for:` shortened to `for`, so a test sees them fire in seconds.
fn fast_rules(rules: &str, hold: &str) -> String {
    let pattern = regex::Regex::new(r"(?m)^(\s+)for: \S+$").expect("valid regex");
    pattern.replace_all(rules, format!("${{1}}for: {hold}")).into_owned()
}

/// A real Prometheus scraping a set of targets, stopped (and its data removed) on drop.
struct Prometheus {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `/usr/bin/prometheus` scraping `targets` as job "oxcd" every second and
    /// evaluating `rules` every second.
    fn start(targets: &[String], rules: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("rules.yaml"), rules).expect("write rules");
        let targets = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files: ['rules.yaml']\n\
             scrape_configs:\n  - job_name: oxcd\n    static_configs:\n      - targets: [{targets}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let addr = format!("127.0.0.1:{}", oxcd_e2e::ports::free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg("--storage.tsdb.path=data")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("prometheus is installed (Debian's prometheus package)");
        Prometheus { child, addr, _dir: dir }
    }

    /// The names of the alerts in `state` ("pending" or "firing"), or `None` while the API
    /// does not answer.
    fn alerts(&self, state: &str) -> Option<BTreeSet<String>> {
        let (_, body) = oxcd_e2e::http::get(&self.addr, "/api/v1/alerts")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let alerts = json.pointer("/data/alerts")?.as_array()?;
        Some(
            alerts
                .iter()
                .filter(|a| a["state"] == state)
                .filter_map(|a| a.pointer("/labels/alertname")?.as_str().map(str::to_string))
                .collect(),
        )
    }

    /// How many targets Prometheus last scraped successfully.
    fn targets_up(&self) -> usize {
        let Some((_, body)) = oxcd_e2e::http::get(&self.addr, "/api/v1/targets") else {
            return 0;
        };
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let targets = json.pointer("/data/activeTargets").and_then(|t| t.as_array());
        targets.map(|t| t.iter().filter(|t| t["health"] == "up").count()).unwrap_or(0)
    }

    /// Waits (bounded) until `done` holds, failing with `what` and the alerts otherwise.
    fn wait(&self, what: &str, limit: Duration, done: impl Fn(&Prometheus) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not reached in {limit:?}; firing: {:?}, pending: {:?}",
                self.alerts("firing"),
                self.alerts("pending")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn alerts_fire_and_resolve_on_a_real_cluster() {
    let rules = std::fs::read_to_string(monitoring_dir().join("alerts.yaml")).expect("rules");
    let rules = fast_rules(&rules, "3s");
    let mut cluster = Cluster::start(Kind::Oxcd, 3);
    let targets: Vec<String> = cluster.members.iter().map(|m| m.client_addr()).collect();
    let prometheus = Prometheus::start(&targets, &rules);
    let wanted = ["OxcdNoLeader", "OxcdInsufficientMembers", "OxcdMembersDown"];
    let none_of_them =
        |p: &Prometheus| p.alerts("firing").is_some_and(|f| wanted.iter().all(|w| !f.contains(*w)));
    prometheus.wait("all three members scraped", Duration::from_secs(60), |p| p.targets_up() == 3);
    prometheus.wait("a healthy cluster fires nothing", Duration::from_secs(30), none_of_them);

    // The leader and one follower down: the surviving follower has no leader, the cluster
    // has no quorum. (A lone surviving leader is another case: see the issue's notes.)
    let leader = (0..3)
        .find(|&i| {
            let metrics = oxcd_e2e::http::get(&targets[i], "/metrics").map(|r| r.1);
            metrics.is_some_and(|m| m.lines().any(|l| l == "etcd_server_is_leader 1"))
        })
        .expect("one member leads");
    let down = [leader, (leader + 1) % 3];
    for &i in &down {
        cluster.members[i].kill9();
    }
    prometheus.wait("the outage alerts fire", Duration::from_secs(120), |p| {
        p.alerts("firing").is_some_and(|f| wanted.iter().all(|w| f.contains(*w)))
    });

    for &i in &down {
        cluster.members[i].restart();
    }
    // OxcdMembersDown also looks at the survivors' peer send failures over a 2m rate window,
    // so it resolves only once the outage has left that window: allow for it on a slow machine.
    prometheus.wait("the outage alerts resolve", Duration::from_secs(120 + 180), none_of_them);
}

#[test]
fn fast_rules_shorten_every_hold() {
    let rules = "      - alert: A\n        for: 3m\n      - alert: B\n        for: 15m\n";
    assert_eq!(fast_rules(rules, "3s"), rules.replace("3m", "3s").replace("15m", "3s"));
}
