//! The operator binary's structured logs, as a log pipeline reads them: `oxcd-operator run`
//! with `OXCD_OPERATOR_LOG_FORMAT=json` (what the chart's `logFormat: json` sets) against a
//! real kube-apiserver writes one JSON object per line, each with a timestamp, level, target
//! and message, and the lines of a reconcile carry the cluster it works on as a span field.
//! No kubelet: the reconciles of a new cluster are enough to log.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use oxcd_k8s_rig::poll::wait_some;
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};

const WAIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_binary_writes_json_lines_with_the_cluster_of_each_reconcile() {
    let cp = ControlPlane::start(Options::new(StorageKind::Oxcd)).await.expect("control plane");
    let crds =
        oxcd_operator::crd::crd_yaml() + "---\n" + &oxcd_operator::backup::api::snapshot_crd_yaml();
    cp.kubectl_input(&["apply", "-f", "-"], Some(&crds)).assert_success();
    let crd_api: Api<CustomResourceDefinition> = Api::all(cp.client());
    wait_some(WAIT, "the EtcdCluster CRD established", || async {
        let c = crd_api.get("etcdclusters.oxcd.dev").await.ok()?;
        let ok =
            c.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
        ok.then_some(())
    })
    .await;

    let binary = oxcd_e2e::bins::target_dir().join("debug/oxcd-operator");
    let mut child = Command::new(&binary)
        .args(["run", "--metrics-addr", "127.0.0.1:0", "--lease-namespace", "default"])
        .args(["--identity", "logs-test"])
        .env("KUBECONFIG", cp.kubeconfig())
        .env("OXCD_OPERATOR_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build -p oxcd-operator)", binary.display()));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    cp.kubectl_input(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: logged\n  \
             namespace: default\nspec:\n  replicas: 1\n",
        ),
    )
    .assert_success();

    // Lines until a reconcile of `logged` has logged its planned step (bounded).
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    let planned = |l: &serde_json::Value| {
        l["message"] == "planned" && l["span"]["cluster"] == "logged" && l["step"].is_string()
    };
    while !lines.iter().any(planned) && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let value: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            lines.push(value);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    assert!(lines.iter().any(planned), "no reconcile of `logged` logged: {lines:#?}");
    for l in &lines {
        let obj = l.as_object().unwrap_or_else(|| panic!("not an object: {l}"));
        let ts = obj.get("timestamp").and_then(|t| t.as_str()).unwrap_or_default();
        assert!(ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "timestamp {ts:?} in {l}");
        let level = obj.get("level").and_then(|v| v.as_str()).unwrap_or_default();
        assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level), "level in {l}");
        assert!(obj.get("target").is_some_and(|t| t.is_string()), "target in {l}");
        assert!(obj.get("message").is_some_and(|t| t.is_string()), "message in {l}");
    }
    let first = &lines[0];
    assert_eq!(first["message"], "serving /metrics", "{first}");
    assert_eq!(first["identity"], "logs-test", "{first}");
    let reconcile = lines.iter().find(|l| planned(l)).expect("a planned line");
    assert_eq!(reconcile["span"]["name"], "reconcile", "{reconcile}");
    assert_eq!(reconcile["target"], "oxcd_operator::controller", "{reconcile}");
    eprintln!("{} JSON lines, e.g. {reconcile}", lines.len());
}
