//! The Helm chart `charts/oxcd` with the real helm v4 binary: `helm lint`, `helm template`
//! validated by the rig's real kube-apiserver (server-side dry-run), the chart's copies kept
//! equal to their sources, and one real `helm install` into the rig whose operator pods run
//! under the process kubelet (the built `oxcd-operator` plays the image), followed by the
//! example cluster, etcdctl through its Services, `helm upgrade` and `helm uninstall`.
//!
//! Needs root (the process kubelet), `scripts/k8s-bins.sh` and a built `oxcd-operator`
//! (`cargo build -p oxcd-operator --bin oxcd-operator`) beside the built `oxcd`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use oxcd_e2e::etcdctl::{run_command, CtlOutput, CtlVersion, Etcdctl};
use oxcd_k8s_rig::kubelet::{ApiServerAccess, Kubelet, KubeletOptions};
use oxcd_k8s_rig::poll::{poll_some, wait_some};
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};
use oxcd_operator::crd::EtcdCluster;
use serde::Deserialize as _;

/// Where the operator is installed.
const OP_NS: &str = "oxcd-system";
/// Where the example cluster lives (the example names none).
const NS: &str = "default";
/// Upper bound for any one condition (a loaded 2-core machine is slow).
const WAIT: Duration = Duration::from_secs(240);
/// Upper bound for one helm run.
const HELM_TIMEOUT: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn chart() -> PathBuf {
    repo().join("charts/oxcd")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The helm binary with its own config/cache/data dirs (nothing of the user's is read or
/// written) and, if given, the rig's kubeconfig.
struct Helm {
    bin: PathBuf,
    home: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
}

impl Helm {
    fn new(kubeconfig: Option<&Path>) -> Helm {
        let bin = oxcd_k8s_rig::bins::helm().expect("helm (scripts/k8s-bins.sh)");
        let home = tempfile::Builder::new().prefix("oxcd-helm-").tempdir().expect("tempdir");
        Helm { bin, home, kubeconfig: kubeconfig.map(Path::to_path_buf) }
    }

    fn run(&self, args: &[&str]) -> CtlOutput {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args);
        for (var, sub) in [
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_DATA_HOME", "data"),
        ] {
            cmd.env(var, self.home.path().join(sub));
        }
        match &self.kubeconfig {
            Some(k) => cmd.env("KUBECONFIG", k),
            None => cmd.env("KUBECONFIG", self.home.path().join("no-kubeconfig")),
        };
        run_command(cmd, format!("helm {}", args.join(" ")), None, HELM_TIMEOUT)
    }

    /// `helm template` of the chart with `--set` values; the output on success.
    fn template(&self, extra: &[&str]) -> String {
        let chart = chart().display().to_string();
        let mut args = vec!["template", "oxcd", chart.as_str(), "--namespace", OP_NS];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        out.assert_success();
        out.stdout
    }
}

/// The YAML documents of a multi-document stream (empty ones dropped).
fn documents(yaml: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| {
            let v = serde_yaml::Value::deserialize(d).expect("valid YAML");
            (!v.is_null()).then_some(v)
        })
        .collect()
}

/// `kind/name` of each document.
fn kinds(docs: &[serde_yaml::Value]) -> BTreeSet<String> {
    docs.iter().map(|d| format!("{}/{}", d["kind"].as_str().unwrap_or(""), name_of(d))).collect()
}

fn name_of(d: &serde_yaml::Value) -> String {
    d["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// The rules of the document of `kind`, comments and names aside.
fn rules_of(docs: &[serde_yaml::Value], kind: &str) -> serde_yaml::Value {
    let doc = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"));
    doc["rules"].clone()
}

#[test]
fn chart_copies_agree_with_their_sources() {
    // The chart's CRDs are the generated ones (crds/ is what `oxcd-operator crd` prints).
    assert!(
        read(&chart().join("crds/etcdcluster.yaml")) == oxcd_operator::crd::crd_yaml(),
        "charts/oxcd/crds/etcdcluster.yaml is stale: \
         run `cargo run -p oxcd-operator -- crd > charts/oxcd/crds/etcdcluster.yaml`"
    );
    assert!(
        read(&chart().join("crds/etcdsnapshot.yaml"))
            == oxcd_operator::backup::api::snapshot_crd_yaml(),
        "charts/oxcd/crds/etcdsnapshot.yaml is stale: \
         run `cargo run -p oxcd-operator -- crd --snapshot > charts/oxcd/crds/etcdsnapshot.yaml`"
    );
    assert_eq!(
        read(&chart().join("examples/etcdcluster.yaml")),
        read(&repo().join("operator/examples/etcdcluster.yaml")),
        "charts/oxcd/examples/etcdcluster.yaml and operator/examples/etcdcluster.yaml differ"
    );
    // The monitoring files the chart ships are monitoring/'s (promtool tests those).
    for file in ["alerts.yaml", "dashboard.json"] {
        assert!(
            read(&chart().join("files").join(file)) == read(&repo().join("monitoring").join(file)),
            "charts/oxcd/files/{file} is stale: cp monitoring/{file} charts/oxcd/files/{file}"
        );
    }
}

#[test]
fn monitoring_parts_are_optional_and_ship_the_repos_rules_and_dashboard() {
    let helm = Helm::new(None);
    let monitoring = |docs: &[serde_yaml::Value]| -> BTreeSet<String> {
        let ours = ["PodMonitor", "PrometheusRule", "ConfigMap"];
        let docs = docs.iter().filter(|d| ours.iter().any(|k| d["kind"].as_str() == Some(k)));
        kinds(&docs.cloned().collect::<Vec<_>>())
    };
    assert!(monitoring(&documents(&helm.template(&[]))).is_empty(), "off by default");
    let all_on = "monitoring.podMonitor.enabled=true,monitoring.prometheusRule.enabled=true,\
                  monitoring.dashboard.enabled=true";
    let chart_dir = chart().display().to_string();
    let lint = helm.run(&["lint", "--strict", &chart_dir, "--set", all_on]);
    lint.assert_success();
    let docs = documents(&helm.template(&["--set", all_on]));
    let want: BTreeSet<String> =
        ["PodMonitor/oxcd-members", "PrometheusRule/oxcd-alerts", "ConfigMap/oxcd-dashboard"]
            .into_iter()
            .map(String::from)
            .collect();
    assert_eq!(monitoring(&docs), want);
    let find = |kind: &str| docs.iter().find(|d| d["kind"].as_str() == Some(kind)).cloned();

    // The rules are monitoring/alerts.yaml's, unchanged (its {{ $labels }} are not templated).
    let rule = find("PrometheusRule").expect("PrometheusRule");
    let alerts: serde_yaml::Value =
        serde_yaml::from_str(&read(&repo().join("monitoring/alerts.yaml"))).expect("alerts.yaml");
    assert_eq!(rule["spec"], alerts, "the PrometheusRule's spec is monitoring/alerts.yaml");

    // The dashboard is monitoring/dashboard.json, labelled for Grafana's sidecar.
    let map = find("ConfigMap").expect("ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"].as_str(), Some("1"));
    let shipped: serde_json::Value =
        serde_json::from_str(map["data"]["oxcd.json"].as_str().unwrap_or("")).expect("JSON");
    let source: serde_json::Value =
        serde_json::from_str(&read(&repo().join("monitoring/dashboard.json"))).expect("JSON");
    assert_eq!(shipped, source, "the ConfigMap holds monitoring/dashboard.json");

    // The PodMonitor scrapes the members the operator runs (their labels and client port).
    let monitor = find("PodMonitor").expect("PodMonitor");
    let selector = &monitor["spec"]["selector"]["matchLabels"];
    assert_eq!(selector["app.kubernetes.io/name"].as_str(), Some("oxcd"));
    assert_eq!(selector["app.kubernetes.io/managed-by"].as_str(), Some("oxcd-operator"));
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(
        (endpoint["port"].as_str(), endpoint["path"].as_str()),
        (Some("client"), Some("/metrics"))
    );

    // Extra labels (a Prometheus' rule selector) and another namespace for the dashboard.
    let docs = documents(&helm.template(&[
        "--set",
        "monitoring.prometheusRule.enabled=true,monitoring.prometheusRule.labels.release=kps,\
         monitoring.dashboard.enabled=true,monitoring.dashboard.namespace=grafana",
    ]));
    let find = |kind: &str| docs.iter().find(|d| d["kind"].as_str() == Some(kind)).cloned();
    let rule = find("PrometheusRule").expect("PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"].as_str(), Some("kps"));
    let map = find("ConfigMap").expect("ConfigMap");
    assert_eq!(map["metadata"]["namespace"].as_str(), Some("grafana"));

    // values.schema.json refuses unknown monitoring keys.
    let chart_dir = chart().display().to_string();
    let bad = helm.run(&["template", "oxcd", &chart_dir, "--set", "monitoring.rules.enabled=true"]);
    assert_ne!(bad.code, Some(0), "an unknown key passed: {}", bad.stdout);
    assert!(bad.stderr.contains("additional properties"), "{}", bad.stderr);
}

#[test]
fn helm_lint_template_rbac_and_schema() {
    let helm = Helm::new(None);
    let chart_dir = chart().display().to_string();
    let lint = helm.run(&["lint", "--strict", &chart_dir]);
    lint.assert_success();
    assert!(lint.stdout.contains("0 chart(s) failed"), "{}", lint.stdout);

    let docs = documents(&helm.template(&[]));
    let expected: BTreeSet<String> = [
        "ServiceAccount/oxcd",
        "ClusterRole/oxcd",
        "ClusterRoleBinding/oxcd",
        "Role/oxcd-leader-election",
        "RoleBinding/oxcd-leader-election",
        "Service/oxcd-metrics",
        "Deployment/oxcd",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kinds(&docs), expected);
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    assert_eq!(deploy["spec"]["replicas"].as_i64(), Some(2));
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"].as_str(), Some("oxcd:0.1.0"));
    let log_format = |docs: &[serde_yaml::Value]| {
        let deploy = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
        let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        let vars = env.as_sequence().cloned().unwrap_or_default();
        let var = vars.iter().find(|e| e["name"] == "OXCD_OPERATOR_LOG_FORMAT").cloned();
        var.and_then(|v| v["value"].as_str().map(String::from))
    };
    assert_eq!(log_format(&docs).as_deref(), Some("text"));
    let json = documents(&helm.template(&["--set", "logFormat=json"]));
    assert_eq!(log_format(&json).as_deref(), Some("json"), "logFormat=json reaches the operator");

    // One source of truth for the RBAC: the rendered rules are operator/rbac.yaml's.
    let reference = documents(&read(&repo().join("operator/rbac.yaml")));
    for kind in ["ClusterRole", "Role"] {
        assert_eq!(
            rules_of(&docs, kind),
            rules_of(&reference, kind),
            "the chart's {kind} rules differ from operator/rbac.yaml"
        );
    }

    // Optional parts.
    let with_monitor = documents(&helm.template(&["--set", "serviceMonitor.enabled=true"]));
    assert!(kinds(&with_monitor).contains("ServiceMonitor/oxcd"));
    let bare = documents(&helm.template(&[
        "--set",
        "rbac.create=false,serviceAccount.create=false,metrics.service.enabled=false",
    ]));
    assert_eq!(kinds(&bare), ["Deployment/oxcd".to_string()].into());

    // values.schema.json refuses bad values with a message naming the value.
    for (set, words) in [
        ("replicaCount=0", &["replicaCount", "minimum"][..]),
        ("image.pullPolicy=Sometimes", &["pullPolicy"][..]),
        ("replicas=3", &["replicas", "additional properties"][..]),
        ("logFormat=xml", &["logFormat"][..]),
    ] {
        let out = helm.run(&["template", "oxcd", &chart_dir, "--set", set]);
        assert!(!out.success(), "--set {set} was accepted");
        for w in words {
            assert!(out.stderr.contains(w), "--set {set}: {w:?} not in {}", out.stderr);
        }
    }
}

/// What the operator's pods are doing: their status and the tail of each container's log.
async fn operator_pods_report(cp: &ControlPlane, kubelet: &Kubelet) -> String {
    let mut report = cp.kubectl_run(&["get", "pods,events", "-n", OP_NS, "-o", "wide"]).to_string();
    let pods: Api<Pod> = Api::namespaced(cp.client(), OP_NS);
    for p in pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        let name = p.name_any();
        let status = serde_json::to_string_pretty(&p.status).unwrap_or_default();
        report += &format!("\n--- pod {name} status: {status}\n");
        if let Some(log) = kubelet.log_path(OP_NS, &name, "operator") {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            report += &format!("--- {}:\n", log.display());
            tail.iter().rev().for_each(|l| report += &format!("{l}\n"));
        }
    }
    report
}

/// The names of the operator's running, ready pods.
async fn ready_operator_pods(pods: &Api<Pod>) -> BTreeSet<String> {
    let lp = ListParams::default().labels("app.kubernetes.io/name=oxcd-operator");
    let Ok(list) = pods.list(&lp).await else { return BTreeSet::new() };
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let conds = p.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            conds.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .map(|p| p.name_any())
        .collect()
}

/// Waits until the Deployment has rolled out `n` ready replicas of its current template and the
/// Lease is held by one of them; returns the holder.
async fn wait_operator_rolled_out(cp: &ControlPlane, kubelet: &Kubelet, n: i32) -> String {
    let deployments: Api<Deployment> = Api::namespaced(cp.client(), OP_NS);
    let pods: Api<Pod> = Api::namespaced(cp.client(), OP_NS);
    let leases: Api<Lease> = Api::namespaced(cp.client(), OP_NS);
    let rolled = poll_some(WAIT, || async {
        let d = deployments.get("oxcd").await.ok()?;
        let s = d.status?;
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(n)
            && s.ready_replicas == Some(n)
            && s.replicas == Some(n);
        done.then_some(())
    })
    .await;
    if rolled.is_none() {
        let report = operator_pods_report(cp, kubelet).await;
        panic!("timed out waiting for the operator Deployment to roll out:\n{report}");
    }
    wait_some(WAIT, "a ready operator pod holding the Lease", || async {
        let ready = ready_operator_pods(&pods).await;
        let holder = leases.get("oxcd-operator").await.ok()?.spec?.holder_identity?;
        (ready.len() == n as usize && ready.contains(&holder)).then_some(holder)
    })
    .await
}

/// Waits until EtcdCluster `name` is Running with `n` healthy voters.
async fn wait_cluster_ready(cp: &ControlPlane, name: &str, n: usize) {
    let clusters: Api<EtcdCluster> = Api::namespaced(cp.client(), NS);
    wait_some(WAIT, &format!("{name} to have {n} ready members"), || async {
        let s = clusters.get(name).await.ok()?.status?;
        let voters = s.members.iter().filter(|m| !m.learner && m.healthy).count();
        (s.phase.as_deref() == Some("Running") && voters == n && s.members.len() == n).then_some(())
    })
    .await;
}

/// etcdctl through the example's Services: the client Service first, then the members' names
/// under the headless peer Service (the rig resolves a ClusterIP Service name to one ready
/// pod, and the members' names always).
fn etcdctl(name: &str) -> Etcdctl {
    let mut endpoints = vec![format!("http://{name}-client.{NS}.svc:2379")];
    endpoints.extend((0..3).map(|o| format!("http://{name}-{o}.{name}.{NS}.svc:2379")));
    Etcdctl::new(CtlVersion::V34, endpoints)
}

fn get(ctl: &Etcdctl, key: &str) -> String {
    let out = ctl.run(&["get", key, "--print-value-only"]);
    out.assert_success();
    out.stdout.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_install_example_upgrade_uninstall_on_the_rig() {
    let operator_bin = oxcd_e2e::bins::target_dir().join("debug/oxcd-operator");
    assert!(
        operator_bin.is_file(),
        "{} is missing: run `cargo build -p oxcd-operator --bin oxcd-operator`",
        operator_bin.display()
    );
    let mut opts = Options::new(StorageKind::Oxcd);
    opts.controllers.push("persistentvolumeclaim-protection-controller".into());
    let cp = ControlPlane::start(opts).await.expect("control plane");
    let mut kopts = KubeletOptions::new(cp.dir().join("kubelet"));
    kopts.api_server = Some(ApiServerAccess::from_kubeconfig(cp.kubeconfig()).expect("access"));
    let kubelet = Kubelet::start(cp.client(), kopts).await.expect("kubelet");
    let helm = Helm::new(Some(cp.kubeconfig()));
    let chart_dir = chart().display().to_string();

    // The rendered chart (CRDs included) is valid for the pinned API server: a server-side
    // dry-run runs every object through its schemas, defaulting and admission.
    let rendered = helm.template(&["--include-crds"]);
    let ns = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OP_NS}\n");
    cp.kubectl_input(&["apply", "-f", "-"], Some(&ns)).assert_success();
    let dry = cp.kubectl_input(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
    dry.assert_success();
    assert!(dry.stdout.contains("deployment.apps/oxcd created (server dry run)"), "{}", dry.stdout);

    // A bad value is refused by `helm install` with its message, and nothing is installed.
    let bad = helm.run(&["install", "oxcd", &chart_dir, "-n", OP_NS, "--set", "replicaCount=0"]);
    assert!(!bad.success() && bad.stderr.contains("replicaCount"), "{}", bad.stderr);
    assert!(helm.run(&["status", "oxcd", "-n", OP_NS]).stderr.contains("not found"));

    // The real install: two operator replicas run under the process kubelet, one leads.
    let t = Instant::now();
    helm.run(&["install", "oxcd", &chart_dir, "-n", OP_NS]).assert_success();
    let first_leader = wait_operator_rolled_out(&cp, &kubelet, 2).await;
    eprintln!("helm install → 2 ready operator pods, {first_leader} leads: {:.1} s", secs(t));

    // The example → a working cluster, data through the client Service.
    let t = Instant::now();
    let example = read(&chart().join("examples/etcdcluster.yaml"));
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(&example)).assert_success();
    wait_cluster_ready(&cp, "example", 3).await;
    eprintln!("kubectl apply example → 3 ready members: {:.1} s", secs(t));
    let ctl = etcdctl("example");
    ctl.run(&["put", "greeting", "hello from helm"]).assert_success();
    assert_eq!(get(&ctl, "greeting"), "hello from helm");

    // helm upgrade rolls the operator; the new replicas run the cluster (a deleted Service
    // of the example comes back).
    let t = Instant::now();
    helm.run(&[
        "upgrade",
        "oxcd",
        &chart_dir,
        "-n",
        OP_NS,
        "--reuse-values",
        "--set",
        "logLevel=debug",
    ])
    .assert_success();
    let leader = wait_operator_rolled_out(&cp, &kubelet, 2).await;
    eprintln!("helm upgrade → rolled out, {leader} leads: {:.1} s", secs(t));
    let deploy: Deployment =
        Api::namespaced(cp.client(), OP_NS).get("oxcd").await.expect("Deployment");
    let env = deploy.spec.and_then(|s| s.template.spec).map(|s| s.containers[0].env.clone());
    assert!(format!("{env:?}").contains("debug"), "the upgrade did not reach the pods: {env:?}");
    let services: Api<Service> = Api::namespaced(cp.client(), NS);
    let old_uid = services.get("example-client").await.expect("client Service").uid();
    services.delete("example-client", &DeleteParams::default()).await.expect("delete");
    wait_some(WAIT, "the upgraded operator to recreate example-client", || async {
        let s = services.get_opt("example-client").await.ok()??;
        (s.uid() != old_uid).then_some(())
    })
    .await;
    assert_eq!(get(&ctl, "greeting"), "hello from helm");

    // helm uninstall removes the operator only: the CRD, the cluster, its volumes and its
    // data stay.
    helm.run(&["uninstall", "oxcd", "-n", OP_NS]).assert_success();
    let pods: Api<Pod> = Api::namespaced(cp.client(), OP_NS);
    wait_some(WAIT, "the operator pods to go", || async {
        let lp = ListParams::default().labels("app.kubernetes.io/name=oxcd-operator");
        pods.list(&lp).await.ok()?.items.is_empty().then_some(())
    })
    .await;
    let clusters: Api<EtcdCluster> = Api::namespaced(cp.client(), NS);
    assert!(clusters.get_opt("example").await.expect("get").is_some(), "the cluster was deleted");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cp.client(), NS);
    for o in 0..3 {
        let c = pvcs.get(&format!("data-example-{o}")).await.expect("the member's volume");
        assert!(c.metadata.deletion_timestamp.is_none(), "data-example-{o} is being deleted");
    }
    ctl.run(&["put", "after", "uninstall"]).assert_success();
    assert_eq!(get(&ctl, "greeting"), "hello from helm");
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
