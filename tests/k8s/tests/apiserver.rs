//! kube-apiserver on oxcd and on etcd 3.6, driven with kubectl (and kube-rs where exact status
//! codes matter), with the same expectations: each test runs its body on both stores, every
//! body asserts what Kubernetes promises, and the two transcripts of what was observed (error
//! texts, event sequences, counts) must be equal.
//!
//! * `workload` — namespaces, a CRD and custom objects, many ConfigMaps, chunked lists
//!   (limit/continue), a compacted resourceVersion (410 Gone), `get -w` and a watch from a
//!   resourceVersion, server-side apply with a conflict, an Event expiring through its lease,
//!   a Deployment reconciled by kube-controller-manager, and a restart of the store under the
//!   running apiserver with a watch open across it. ConfigMaps have no watch cache here, so
//!   their reads and watches reach the store.
//! * `three_members_one_restarts` — 3 storage members; a follower, then the leader, is stopped
//!   and restarted under the apiserver while kubectl keeps writing.
//!
//! `OXCD_K8S_CONFIGMAPS` sets how many ConfigMaps `workload` creates (default
//! [`DEFAULT_CONFIGMAPS`]).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams, VersionMatch};
use kube::Api;
use oxcd_e2e::{CtlOutput, CtlVersion, Etcdctl};
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};

/// ConfigMaps created by `workload` unless `OXCD_K8S_CONFIGMAPS` says otherwise.
const DEFAULT_CONFIGMAPS: usize = 10_000;

/// kube-apiserver's `--event-ttl` in `workload`: short, so the Event's lease expires in the
/// test.
const EVENT_TTL: Duration = Duration::from_secs(10);

/// Control planes are heavy (kube-apiserver alone wants a core while it starts): the tests of
/// this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `body` on etcd 3.6 and on oxcd, then compares: etcd failing means the test is wrong;
/// oxcd failing, or observing anything else than etcd, is a difference to fix.
async fn on_both<F, Fut>(name: &str, body: F)
where
    F: Fn(StorageKind) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>>>,
{
    let _serial = SERIAL.lock().await;
    let mut results = Vec::new();
    for kind in [StorageKind::Etcd36, StorageKind::Oxcd] {
        let start = Instant::now();
        let r = body(kind).await;
        eprintln!("[{name}] on {}: {} in {:?}", kind.label(), ok_or_err(&r), start.elapsed());
        results.push((kind, r));
    }
    let (etcd, oxcd) = (&results[0].1, &results[1].1);
    match (etcd, oxcd) {
        (Err(e), _) => panic!("[{name}] fails on etcd 3.6, so the test is wrong: {e:#}"),
        (Ok(_), Err(e)) => panic!("[{name}] passes on etcd 3.6 but fails on oxcd: {e:#}"),
        (Ok(a), Ok(b)) => {
            eprintln!("[{name}] etcd 3.6 observed:\n  {}", a.join("\n  "));
            if a != b {
                let mut report = String::new();
                for i in 0..a.len().max(b.len()) {
                    let (x, y) = (a.get(i), b.get(i));
                    let mark = if x == y { "  " } else { "!=" };
                    report.push_str(&format!(
                        "{mark} etcd: {}\n   oxcd: {}\n",
                        x.map_or("-", |s| s.as_str()),
                        y.map_or("-", |s| s.as_str())
                    ));
                }
                panic!("[{name}] oxcd observed something else than etcd 3.6:\n{report}");
            }
        }
    }
}

fn ok_or_err(r: &Result<Vec<String>>) -> &'static str {
    if r.is_ok() {
        "passed"
    } else {
        "FAILED"
    }
}

/// kubectl that must succeed; its stdout.
fn ok(cp: &ControlPlane, args: &[&str]) -> Result<String> {
    let out = cp.kubectl_run(args);
    ensure!(out.success(), "{out}");
    Ok(out.stdout)
}

/// kubectl with stdin that must succeed; its stdout.
fn ok_input(cp: &ControlPlane, args: &[&str], stdin: &str) -> Result<String> {
    let out = cp.kubectl_input(args, Some(stdin));
    ensure!(out.success(), "{out}");
    Ok(out.stdout)
}

/// kubectl that must fail; its stderr's first line (kubectl's `Error from server (...)`).
fn fails(cp: &ControlPlane, args: &[&str]) -> Result<String> {
    let out: CtlOutput = cp.kubectl_run(args);
    ensure!(!out.success() && !out.timed_out, "expected a failure: {out}");
    Ok(out.stderr.lines().next().unwrap_or_default().to_string())
}

/// Polls `check` every 200 ms until it yields `Some`, at most `timeout`.
async fn until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("{what}: not after {timeout:?} (last error: {last})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn configmap_count() -> usize {
    std::env::var("OXCD_K8S_CONFIGMAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONFIGMAPS)
}

/// The storage's current revision, read with etcdctl 3.5 from its first member.
fn storage_revision(cp: &ControlPlane) -> Result<i64> {
    let ctl = Etcdctl::new(CtlVersion::V35, cp.storage_endpoints().into_iter().take(1));
    let out = ctl.run(&["endpoint", "status", "-w", "json"]);
    ensure!(out.success(), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout)?;
    v[0]["Status"]["header"]["revision"].as_i64().ok_or_else(|| anyhow!("no revision: {v}"))
}

/// One watch event line of `kubectl get --raw '...watch=true...'` as `TYPE name`.
fn watch_event(line: &str) -> Result<String> {
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("watch line {line:?}"))?;
    let ty = v["type"].as_str().unwrap_or("?");
    if ty == "BOOKMARK" {
        let end = &v["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"];
        return Ok(format!("BOOKMARK initial-events-end={}", end.as_str().unwrap_or("-")));
    }
    if ty == "ERROR" {
        return Ok(format!("ERROR {} {}", v["object"]["code"], v["object"]["reason"]));
    }
    Ok(format!("{ty} {}", v["object"]["metadata"]["name"].as_str().unwrap_or("?")))
}

fn status_of(e: kube::Error) -> Result<String> {
    match e {
        kube::Error::Api(s) => Ok(format!("{} {}: {}", s.code, s.reason, s.message)),
        other => Err(anyhow!("expected an API status, got {other}")),
    }
}

/// What `workload` observes on one store.
async fn workload(kind: StorageKind) -> Result<Vec<String>> {
    // No watch cache for ConfigMaps: their lists, continuations and watches go to the store
    // (kube-apiserver 1.36 serves them from its cache otherwise, even continuations, so a
    // compaction would not be seen).
    let opts =
        Options::new(kind).event_ttl(EVENT_TTL).apiserver_arg("--watch-cache-sizes=configmaps#0");
    let mut cp = ControlPlane::start(opts)
        .await
        .with_context(|| format!("starting the control plane on {}", kind.label()))?;
    let r = workload_steps(&mut cp).await;
    if r.is_err() {
        eprintln!(
            "--- kube-apiserver log tail ({}) ---\n{}",
            kind.label(),
            cp.apiserver_log_tail(40)
        );
    }
    r
}

async fn workload_steps(cp: &mut ControlPlane) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    let client = cp.client();

    // Namespaces: create, list, delete (the namespace controller empties and removes it).
    ok(cp, &["create", "namespace", "w1"])?;
    ok(cp, &["create", "namespace", "w-gone"])?;
    ok(cp, &["-n", "w-gone", "create", "configmap", "x", "--from-literal=a=b"])?;
    let names = ok(cp, &["get", "namespaces", "-o", "name"])?;
    ensure!(names.contains("namespace/w1") && names.contains("namespace/default"), "{names}");
    ok(cp, &["delete", "namespace", "w-gone", "--wait=false"])?;
    until("namespace w-gone removed", Duration::from_secs(60), || {
        let out = cp.kubectl_run(&["get", "namespace", "w-gone"]);
        Ok((!out.success() && out.stderr.contains("NotFound")).then_some(()))
    })
    .await?;
    seen.push("namespaces: w1 created, w-gone finalized and removed".to_string());

    // A streaming list from the watch cache (what client-go's WatchListClient sends): kube-apiserver
    // serves it only when every store endpoint's Status version says RequestWatchProgress
    // works (etcd >= 3.5.13), otherwise an ERROR event (oxcd reported 3.5.1 until it said
    // 3.5.13).
    let raw = "/api/v1/namespaces?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=5";
    let out = cp.kubectl_run(&["get", "--raw", raw]);
    let mut streamed = Vec::new();
    for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let e = watch_event(line)?;
        let end = e.starts_with("BOOKMARK") || e.starts_with("ERROR");
        streamed.push(e);
        if end {
            break;
        }
    }
    let want = [
        "ADDED default",
        "ADDED kube-node-lease",
        "ADDED kube-public",
        "ADDED kube-system",
        "ADDED w1",
        "BOOKMARK initial-events-end=true",
    ];
    ensure!(streamed == want, "streaming list of namespaces: {streamed:?} {}", out.stderr);
    seen.push(format!("streaming list from the cache: {}", streamed.join(", ")));

    // A CRD and custom objects.
    ok_input(cp, &["apply", "-f", "-"], CRD)?;
    ok(cp, &["wait", "--for=condition=Established", "crd/widgets.rig.oxcd.io", "--timeout=60s"])?;
    for i in 0..3 {
        let obj = format!(
            "apiVersion: rig.oxcd.io/v1\nkind: Widget\nmetadata:\n  name: w{i}\n  namespace: w1\nspec:\n  size: {i}\n"
        );
        // The CRD's REST endpoint appears a moment after Established: retry the first create.
        until("custom object created", Duration::from_secs(30), || {
            let out = cp.kubectl_input(&["apply", "-f", "-"], Some(&obj));
            Ok(out.success().then_some(()))
        })
        .await?;
    }
    let sizes = ok(cp, &["-n", "w1", "get", "widgets", "-o", "jsonpath={.items[*].spec.size}"])?;
    ensure!(sizes == "0 1 2", "widget sizes {sizes:?}");
    let bad = fails(
        cp,
        &["-n", "w1", "patch", "widget", "w1", "--type=merge", "-p", r#"{"spec":{"size":"big"}}"#],
    )?;
    seen.push(format!("crd: 3 widgets; invalid patch: {bad}"));

    // Many ConfigMaps, created through kube-rs 16 at a time.
    let n = configmap_count();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "w1");
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": { "name": format!("cm-{i:05}"), "labels": { "bulk": "true" } },
                    "data": { "index": i.to_string() },
                }))?;
                cms.create(&PostParams::default(), &cm).await.context("create ConfigMap")
            }
        })
        .buffer_unordered(16)
        .try_for_each(|_| futures::future::ok(()))
        .await?;
    eprintln!("[workload] {n} ConfigMaps created in {:?}", start.elapsed());

    // kubectl lists them in chunks (limit/continue): count the items and the requests.
    let out = cp.kubectl_run(&[
        "-n",
        "w1",
        "get",
        "configmaps",
        "-l",
        "bulk=true",
        "--chunk-size=500",
        "-o",
        "name",
        "-v=6",
    ]);
    ensure!(out.success(), "{out}");
    let listed = out.stdout.lines().filter(|l| l.starts_with("configmap/")).count();
    ensure!(listed == n, "kubectl listed {listed} of {n} ConfigMaps");
    let pages = out.stderr.lines().filter(|l| l.contains("limit=500")).count();
    ensure!(pages >= n.div_ceil(500), "only {pages} requests with limit=500 for {n} items");
    seen.push(format!("chunked list: {listed} ConfigMaps, {} pages", n.div_ceil(500)));

    // The first page of a list and its continue token, then a compaction past it.
    let first = cms.list(&ListParams::default().labels("bulk=true").limit(500)).await?;
    let rv0 = first.metadata.resource_version.clone().context("list without resourceVersion")?;
    let token = first.metadata.continue_.clone().context("no continue token")?;
    ensure!(first.items.len() == 500.min(n), "first page has {} items", first.items.len());
    let remaining = first.metadata.remaining_item_count;
    seen.push(format!("first page: 500 items, remainingItemCount {remaining:?}"));
    for i in 0..5 {
        ok(cp, &["-n", "w1", "label", "configmap", &format!("cm-{i:05}"), "touched=yes"])?;
    }
    let rev = storage_revision(cp)?;
    let ctl = Etcdctl::new(CtlVersion::V35, cp.storage_endpoints());
    let compact = ctl.run(&["compaction", &rev.to_string()]);
    ensure!(compact.success(), "{compact}");
    let e = cms
        .list(&ListParams::default().labels("bulk=true").limit(500).continue_token(&token))
        .await
        .err()
        .context("continuing a list from before a compaction succeeded")?;
    seen.push(format!("continue after compaction: {}", status_of(e)?.replace(&rv0, "RV0")));
    let e = cms
        .list(
            &ListParams::default()
                .labels("bulk=true")
                .limit(500)
                .at(&rv0)
                .matching(VersionMatch::Exact),
        )
        .await
        .err()
        .context("an exact list at a compacted resourceVersion succeeded")?;
    seen.push(format!(
        "exact list at compacted rv: {}",
        status_of(e)?.replace(&rv0, "RV0").replace(&rev.to_string(), "REV")
    ));
    let raw = format!("/api/v1/namespaces/w1/configmaps?limit=500&continue={token}");
    seen.push(format!(
        "kubectl continue after compaction: {}",
        fails(cp, &["get", "--raw", &raw])?
    ));

    // A watch from a resourceVersion sees exactly what happened after it, in order.
    ok(cp, &["-n", "w1", "create", "configmap", "watched-a", "--from-literal=v=1"])?;
    let rv_a = ok(
        cp,
        &[
            "-n",
            "w1",
            "get",
            "configmap",
            "watched-a",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    )?;
    // `-o name` prints no event type: added a, added b, deleted a.
    let mut live = cp.kubectl_spawn(&[
        "-n",
        "w1",
        "get",
        "configmaps",
        "-l",
        "watch=yes",
        "-w",
        "--output-watch-events",
        "-o",
        "name",
    ]);
    ok(cp, &["-n", "w1", "label", "configmap", "watched-a", "watch=yes"])?;
    ok(cp, &["-n", "w1", "create", "configmap", "watched-b", "--from-literal=v=2"])?;
    ok(cp, &["-n", "w1", "label", "configmap", "watched-b", "watch=yes"])?;
    ok(cp, &["-n", "w1", "delete", "configmap", "watched-a"])?;
    let raw = format!(
        "/api/v1/namespaces/w1/configmaps?watch=true&resourceVersion={rv_a}&timeoutSeconds=3&fieldSelector=metadata.namespace%3Dw1"
    );
    let out = cp.kubectl_run(&["get", "--raw", &raw]);
    ensure!(out.success(), "{out}");
    let events: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(watch_event)
        .collect::<Result<_>>()?;
    let events: Vec<String> = events.into_iter().filter(|e| e.contains("watched-")).collect();
    ensure!(
        events
            == ["MODIFIED watched-a", "ADDED watched-b", "MODIFIED watched-b", "DELETED watched-a"],
        "watch from rv {rv_a}: {events:?}"
    );
    seen.push(format!("watch from rv: {}", events.join(", ")));
    let live_lines = live.lines(3, Duration::from_secs(30));
    ensure!(
        live_lines == ["configmap/watched-a", "configmap/watched-b", "configmap/watched-a"],
        "kubectl get -w: {live_lines:?} (stderr: {})",
        live.stderr()
    );
    seen.push(format!("kubectl get -w: {}", live_lines.join(", ")));
    drop(live);

    // A streaming list (watch with sendInitialEvents, what client-go's WatchListClient
    // sends): the current objects, then a bookmark marking the end of the initial events.
    // kube-apiserver serves it only when the store's version says RequestWatchProgress works.
    let raw = "/api/v1/namespaces/w1/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&labelSelector=watch%3Dyes&timeoutSeconds=5";
    let out = cp.kubectl_run(&["get", "--raw", raw]);
    let mut streamed = Vec::new();
    for line in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let e = watch_event(line)?;
        let end = e.starts_with("BOOKMARK");
        streamed.push(e);
        if end {
            break;
        }
    }
    let stderr = out.stderr.lines().next().unwrap_or_default().to_string();
    seen.push(format!("streaming list: {} {}", streamed.join(", "), stderr).trim().to_string());

    // Server-side apply: two managers, a conflict, a forced takeover.
    let ssa = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: w1\ndata:\n  a: \"{v}\"\n")
    };
    ok_input(cp, &["apply", "--server-side", "--field-manager=alice", "-f", "-"], &ssa("1"))?;
    let out = cp.kubectl_input(
        &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
        Some(&ssa("2")),
    );
    ensure!(!out.success() && out.stderr.contains("conflict"), "expected a conflict: {out}");
    seen.push(format!("ssa conflict: {}", out.stderr.lines().next().unwrap_or_default()));
    ok_input(
        cp,
        &["apply", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", "-"],
        &ssa("2"),
    )?;
    let managers = ok(
        cp,
        &[
            "-n",
            "w1",
            "get",
            "configmap",
            "ssa",
            "-o",
            "jsonpath={.data.a} {.metadata.managedFields[*].manager}",
        ],
    )?;
    ensure!(managers == "2 bob", "after the forced apply: {managers:?}");
    seen.push(format!("ssa forced: {managers}"));

    // An Event is stored with a lease of --event-ttl: the lease's expiry deletes it, and a
    // watch sees the deletion.
    ok_input(cp, &["create", "-f", "-"], EVENT)?;
    let rv_e = ok(
        cp,
        &["-n", "w1", "get", "event", "rig-event", "-o", "jsonpath={.metadata.resourceVersion}"],
    )?;
    let raw = format!(
        "/api/v1/namespaces/w1/events?watch=true&resourceVersion={rv_e}&timeoutSeconds=60&fieldSelector=metadata.name%3Drig-event"
    );
    let mut ev_watch = cp.kubectl_spawn(&["get", "--raw", &raw]);
    let line = ev_watch
        .next_line(EVENT_TTL + Duration::from_secs(40))
        .with_context(|| format!("no watch event for the expiring Event: {}", ev_watch.stderr()))?;
    let ev = watch_event(&line)?;
    ensure!(ev == "DELETED rig-event", "event watch: {ev}");
    let gone = cp.kubectl_run(&["-n", "w1", "get", "event", "rig-event"]);
    ensure!(!gone.success() && gone.stderr.contains("NotFound"), "{gone}");
    seen.push(format!("event expired through its lease: {ev}"));
    drop(ev_watch);

    // A Deployment: kube-controller-manager makes its ReplicaSet and Pods, scales them, and
    // the garbage collector removes them with it.
    ok(
        cp,
        &[
            "-n",
            "w1",
            "create",
            "deployment",
            "web",
            "--image=registry.invalid/web:1",
            "--replicas=2",
        ],
    )?;
    let pods = |want: usize| {
        let out = cp.kubectl_run(&["-n", "w1", "get", "pods", "-l", "app=web", "-o", "name"]);
        Ok((out.success() && out.stdout.lines().count() == want).then_some(()))
    };
    until("2 pods of web", Duration::from_secs(60), || pods(2)).await?;
    let rs = ok(
        cp,
        &["-n", "w1", "get", "rs", "-l", "app=web", "-o", "jsonpath={.items[*].spec.replicas}"],
    )?;
    ensure!(rs == "2", "replicaset replicas {rs:?}");
    ok(cp, &["-n", "w1", "scale", "deployment", "web", "--replicas=3"])?;
    until("3 pods of web", Duration::from_secs(60), || pods(3)).await?;
    ok(cp, &["-n", "w1", "delete", "deployment", "web"])?;
    until("web's ReplicaSet and Pods collected", Duration::from_secs(60), || {
        let rs = cp.kubectl_run(&["-n", "w1", "get", "rs", "-l", "app=web", "-o", "name"]);
        Ok((rs.success() && rs.stdout.trim().is_empty()).then_some(()).and(pods(0)?))
    })
    .await?;
    seen.push("deployment: 2 pods, scaled to 3, collected with the deployment".to_string());

    // The store restarts under the running apiserver; a watch open across the restart goes
    // on, and reads and writes work once it is back.
    let rv_r = ok(
        cp,
        &["-n", "w1", "get", "configmap", "ssa", "-o", "jsonpath={.metadata.resourceVersion}"],
    )?;
    let raw = format!(
        "/api/v1/namespaces/w1/configmaps?watch=true&resourceVersion={rv_r}&timeoutSeconds=120&labelSelector=restart%3Dyes"
    );
    let mut across = cp.kubectl_spawn(&["get", "--raw", &raw]);
    ok(cp, &["-n", "w1", "create", "configmap", "before-restart", "--from-literal=v=1"])?;
    ok(cp, &["-n", "w1", "label", "configmap", "before-restart", "restart=yes"])?;
    let first = across.next_line(Duration::from_secs(30)).context("no event before the restart")?;
    cp.restart_storage().await?;
    let created = until("a write after the restart", Duration::from_secs(60), || {
        let out = cp.kubectl_run(&[
            "-n",
            "w1",
            "create",
            "configmap",
            "after-restart",
            "--from-literal=v=1",
        ]);
        Ok(out.success().then_some(()))
    })
    .await;
    created?;
    ok(cp, &["-n", "w1", "label", "configmap", "after-restart", "restart=yes"])?;
    let second = across
        .next_line(Duration::from_secs(60))
        .with_context(|| format!("the watch saw nothing after the restart: {}", across.stderr()))?;
    seen.push(format!("watch across restart: {}, {}", watch_event(&first)?, watch_event(&second)?));
    let count = ok(
        cp,
        &["-n", "w1", "get", "configmaps", "-l", "bulk=true", "--chunk-size=1000", "-o", "name"],
    )?
    .lines()
    .count();
    ensure!(count == n, "after the restart {count} of {n} ConfigMaps");
    seen.push(format!("after restart: {count} ConfigMaps"));
    Ok(seen)
}

/// What `three_members_one_restarts` observes on one store.
async fn three_members(kind: StorageKind) -> Result<Vec<String>> {
    let mut cp = ControlPlane::start(Options::new(kind).members(3).without_controller_manager())
        .await
        .with_context(|| format!("starting the control plane on 3 x {}", kind.label()))?;
    let r = three_members_steps(&mut cp).await;
    if r.is_err() {
        eprintln!(
            "--- kube-apiserver log tail ({}) ---\n{}",
            kind.label(),
            cp.apiserver_log_tail(40)
        );
    }
    r
}

/// The index of the storage member that is raft leader.
fn leader_index(cp: &ControlPlane) -> Result<usize> {
    let ctl = Etcdctl::new(CtlVersion::V35, cp.storage_endpoints());
    let out = ctl.run(&["endpoint", "status", "-w", "json"]);
    ensure!(out.success(), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let arr = v.as_array().context("endpoint status is not a list")?;
    arr.iter()
        .position(|s| s["Status"]["leader"] == s["Status"]["header"]["member_id"])
        .context("no member says it is the leader")
}

async fn three_members_steps(cp: &mut ControlPlane) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    ok(cp, &["create", "namespace", "m3"])?;
    let rv = ok(cp, &["get", "namespace", "m3", "-o", "jsonpath={.metadata.resourceVersion}"])?;
    let raw = format!(
        "/api/v1/namespaces/m3/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=240"
    );
    let mut watch = cp.kubectl_spawn(&["get", "--raw", &raw]);
    let mut written = 0;
    let leader = leader_index(cp)?;
    let follower = (leader + 1) % 3;
    for (role, i) in [("follower", follower), ("leader", leader)] {
        cp.with_storage(move |c| c.members[i].stop()).await;
        // Writes while the member is down: with a quorum left they must all succeed; when the
        // leader is gone the first may wait for the election (kubectl retries nothing, so
        // each create is retried here until it succeeds, and the errors are printed).
        for _ in 0..10 {
            let name = format!("cm-{written:03}");
            let mut errors = Vec::new();
            until(&format!("create {name} with the {role} down"), Duration::from_secs(60), || {
                let out = cp.kubectl_run(&["-n", "m3", "create", "configmap", &name]);
                if out.success() || out.stderr.contains("AlreadyExists") {
                    return Ok(Some(()));
                }
                errors.push(out.stderr.trim().to_string());
                Ok(None)
            })
            .await?;
            if !errors.is_empty() {
                eprintln!(
                    "[three_members] {} {role} down, {name}: errors before success: {errors:?}",
                    cp.storage_kind().label()
                );
            }
            written += 1;
        }
        cp.with_storage(move |c| c.members[i].respawn()).await.map_err(|e| anyhow!("{e}"))?;
        cp.with_storage(move |c| c.members[i].wait_ready(oxcd_e2e::server::READY_TIMEOUT))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        seen.push(format!("{role} stopped and restarted: 10 writes with it down"));
    }
    let lines = watch.lines(written, Duration::from_secs(60));
    let events: Vec<String> = lines.iter().map(|l| watch_event(l)).collect::<Result<_>>()?;
    let want: Vec<String> = (0..written).map(|i| format!("ADDED cm-{i:03}")).collect();
    ensure!(events == want, "watch during the restarts: {events:?}");
    seen.push(format!("watch: {written} ADDED events in order"));
    let count = ok(cp, &["-n", "m3", "get", "configmaps", "-o", "name"])?
        .lines()
        .filter(|l| l.starts_with("configmap/cm-"))
        .count();
    ensure!(count == written, "{count} of {written} ConfigMaps listed");
    seen.push(format!("list: {count} ConfigMaps"));
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_on_oxcd_and_etcd() {
    on_both("workload", workload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_one_restarts() {
    on_both("three_members", three_members).await;
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.rig.oxcd.io
spec:
  group: rig.oxcd.io
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size:
                  type: integer
"#;

const EVENT: &str = r#"apiVersion: v1
kind: Event
metadata:
  name: rig-event
  namespace: w1
involvedObject:
  kind: ConfigMap
  name: ssa
  namespace: w1
reason: Testing
message: expires through its lease
type: Normal
"#;
