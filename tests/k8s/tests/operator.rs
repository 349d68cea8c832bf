//! The operator end to end on the rig: a real kube-apiserver (on oxcd) and
//! kube-controller-manager, the process kubelet running every member as a real `oxcd` process
//! on its own 127.x address, the operator in this process (`oxcd_operator::app::run`, the same
//! code as the binary), and stock etcdctl / etcd-client talking to the cluster the way a user
//! does: through its client Service `<name>-client.<ns>.svc:2379`. Each step asserts the data
//! (keys written before are read back), not only the phase.
//!
//! A rig is a whole control plane on a 2-core machine, so there are few tests, each taking one
//! rig through several steps: day one and two on the example (apply, faults, upgrade between
//! two builds), scaling under writes while operator replicas crash and hand over,
//! quorum-loss recovery, and day-two maintenance (evictions against the PodDisruptionBudget,
//! volume growth, scheduled defragmentation, the operator's metrics).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use oxcd_e2e::etcdctl::{CtlVersion, Etcdctl};
use oxcd_k8s_rig::kubelet::{ImageTable, Kubelet, KubeletOptions};
use oxcd_k8s_rig::poll::poll_some;
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};
use oxcd_operator::crd::{EtcdCluster, EtcdClusterStatus};

/// Namespace of every test cluster.
const NS: &str = "default";
/// Upper bound for any one condition in these tests (a loaded 2-core machine is slow).
const WAIT: Duration = Duration::from_secs(240);
/// The version the upgrade goes to: image `oxcd:<NEXT>`, which the rig's image table maps to a
/// second oxcd binary (see [`Rig::start`]).
const NEXT: &str = "0.1.1-next";
/// A version whose image `oxcd:<BROKEN>` the kubelet cannot run: the rig's image table maps it
/// to a binary that does not exist, so its pods stay in `ErrImagePull`.
const BROKEN: &str = "0.0.0-broken";

/// The control plane, one kubelet and the operator.
struct Rig {
    operator: Option<Operator>,
    kubelet: Kubelet,
    /// The binary behind image `oxcd:<NEXT>`.
    next_binary: PathBuf,
    cp: ControlPlane,
    /// One rig at a time in this binary (each is a whole control plane on a 2-core machine);
    /// dropped last, after everything above has stopped.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// Serialises the rigs of this test binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An operator replica running in this process.
struct Operator {
    identity: String,
    /// Where it serves `/metrics`.
    metrics: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    fn start(client: Client, identity: &str) -> Operator {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let metrics = format!("127.0.0.1:{}", oxcd_e2e::ports::free_port());
        let opts = oxcd_operator::app::Options {
            metrics_addr: metrics.parse().expect("address"),
            namespace: None,
            lease_namespace: Some(NS.into()),
            lease_name: "oxcd-operator".into(),
            identity: identity.into(),
        };
        let task = tokio::spawn(oxcd_operator::app::run(client, opts, async move {
            let _ = rx.await;
        }));
        Operator { identity: identity.into(), metrics, stop, task }
    }

    /// Graceful stop (as on SIGTERM): the Lease is released.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }

    /// A crash: the task is dropped mid-step, nothing is released.
    fn kill(self) {
        self.task.abort();
    }

    /// [`Operator::kill`], returning once the task is gone.
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

impl Rig {
    async fn start() -> Rig {
        let serial = SERIAL.lock().await;
        // The operator's own log (what it planned, which step failed) goes with the test's
        // output, shown when a test fails.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,oxcd_operator=info,kube_client=off")
        });
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        // A deleted member volume must go once its pod is gone, as in a real cluster.
        let mut opts = Options::new(StorageKind::Oxcd);
        opts.controllers.push("persistentvolumeclaim-protection-controller".into());
        let cp = ControlPlane::start(opts).await.expect("control plane");
        // Two builds of the member image: `oxcd:<anything>` is the built oxcd, `oxcd:<NEXT>`
        // a second file with the same bits, so an upgrade is a change of the binary every
        // member runs (the test checks each process's executable).
        let images = ImageTable::oxcd_defaults();
        let built = images.rule("oxcd").ok().and_then(|r| r.entrypoint.clone()).expect("oxcd");
        let next_binary = cp.dir().join(format!("oxcd-{NEXT}"));
        if std::fs::hard_link(&built, &next_binary).is_err() {
            std::fs::copy(&built, &next_binary).expect("a second oxcd binary");
        }
        let mut kopts = KubeletOptions::new(cp.dir().join("kubelet"));
        kopts.images = images
            .with_image(&format!("oxcd:{NEXT}"), &next_binary)
            .with_image(&format!("oxcd:{BROKEN}"), cp.dir().join("no-such-oxcd-binary"));
        let kubelet = Kubelet::start(cp.client(), kopts).await.expect("kubelet");
        let crd = oxcd_operator::crd::crd_yaml();
        cp.kubectl_input(&["apply", "-f", "-"], Some(&crd)).assert_success();
        let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
        poll_some(WAIT, || async {
            let crd = crds.get("etcdclusters.oxcd.dev").await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        })
        .await
        .expect("the CRD is established");
        let operator = Some(Operator::start(cp.client(), "operator-a"));
        Rig { operator, kubelet, next_binary, cp, _serial: serial }
    }

    /// An admin client that returns a 429 (a refused eviction) as it is, unlike kube-rs's
    /// default client.
    async fn client_without_retries(&self) -> Client {
        let kc = kube::config::Kubeconfig::read_from(self.cp.kubeconfig()).expect("kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("client config");
        config.default_retry = false;
        Client::try_from(config).expect("client")
    }

    fn clusters(&self) -> Api<EtcdCluster> {
        Api::namespaced(self.cp.client(), NS)
    }

    fn apply(&self, yaml: &str) {
        self.cp.kubectl_input(&["apply", "-f", "-"], Some(yaml)).assert_success();
    }

    async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.clusters()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .expect("patch the spec");
    }

    async fn status(&self, name: &str) -> Option<EtcdClusterStatus> {
        self.clusters().get(name).await.ok()?.status
    }

    /// Waits until `name` has `n` healthy voters, no learner, phase Running; returns the
    /// status.
    async fn wait_ready(&self, name: &str, n: usize) -> EtcdClusterStatus {
        let mut last = None;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(s) = self.status(name).await {
                let voters = s.members.iter().filter(|m| !m.learner && m.healthy).count();
                if s.phase.as_deref() == Some("Running")
                    && voters == n
                    && s.members.len() == n
                    && s.ready_replicas as usize == n
                {
                    return s;
                }
                last = Some(s);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.diagnose(name);
        panic!("{name} never had {n} ready members; last status: {last:#?}");
    }

    /// Prints what a person would look at when a step of cluster `name` does not happen:
    /// its pods, volumes and Events, and the end of every log its member containers wrote
    /// (restarted and deleted ones included), oldest first.
    fn diagnose(&self, name: &str) {
        let out = self.cp.kubectl_run(&["get", "pods,pvc", "-n", NS, "-o", "wide"]);
        eprintln!("{}{}", out.stdout, out.stderr);
        let out = self.cp.kubectl_run(&["get", "events.events.k8s.io", "-n", NS]);
        eprintln!("{}{}", out.stdout, out.stderr);
        let Ok(dirs) = std::fs::read_dir(self.kubelet.root().join("logs")) else { return };
        let mut files: Vec<PathBuf> = dirs
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().starts_with(&format!("{NS}_{name}-")))
            .flat_map(|d| std::fs::read_dir(d.path().join("oxcd")).into_iter().flatten())
            .flatten()
            .map(|f| f.path())
            .collect();
        files.sort_by_key(|f| f.metadata().and_then(|m| m.modified()).ok());
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("== {}:\n{}", f.display(), tail.join("\n"));
        }
    }

    /// etcdctl as a user runs it: through the client Service.
    fn etcdctl(&self, name: &str) -> Etcdctl {
        Etcdctl::new(CtlVersion::V34, [client_url(name)])
    }

    /// Runs etcdctl through the client Service until it succeeds (bounded): like a user, it
    /// retries when the Service still names a member that just went down (the name moves only
    /// once that pod is unready, as a Service's endpoints do). Only for idempotent commands.
    /// The waits and the etcdctl processes block this thread, so the runtime first hands this
    /// worker's other tasks (the operator's) to another one (`block_in_place`).
    fn ctl(&self, name: &str, args: &[&str]) -> oxcd_e2e::CtlOutput {
        tokio::task::block_in_place(|| {
            let deadline = Instant::now() + WAIT;
            loop {
                let out = self.etcdctl(name).run(args);
                if out.success() || Instant::now() > deadline {
                    out.assert_success();
                    return out;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    }

    /// Member (name → id) as the cluster lists it.
    fn member_ids(&self, name: &str) -> BTreeMap<String, String> {
        let out = self.ctl(name, &["member", "list"]);
        out.stdout
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(", ").collect();
                Some((f.get(2)?.to_string(), f.first()?.to_string()))
            })
            .collect()
    }

    /// Puts `keys` through the client Service (each acknowledged).
    fn put_all(&self, name: &str, keys: &[String]) {
        for k in keys {
            self.ctl(name, &["put", k, &format!("value of {k}")]);
        }
    }

    /// Asserts every key of `keys` is served through the client Service with its value.
    fn assert_kept(&self, name: &str, prefix: &str, keys: &[String]) {
        let stored = pairs(&self.ctl(name, &["get", prefix, "--prefix"]).stdout);
        let lost: Vec<&String> = keys
            .iter()
            .filter(|k| {
                stored.get(*k).map(String::as_str) != Some(format!("value of {k}").as_str())
            })
            .collect();
        assert!(
            lost.is_empty(),
            "{} of {} keys lost, e.g. {:?}",
            lost.len(),
            keys.len(),
            &lost[..lost.len().min(5)]
        );
    }

    /// The keys under `prefix` member `pod` itself has (a serializable read on its own client
    /// URL); None when it does not answer.
    fn member_keys(&self, name: &str, pod: &str, prefix: &str) -> Option<BTreeSet<String>> {
        let url = format!("http://{pod}.{name}.{NS}.svc:2379");
        let args = ["get", prefix, "--prefix", "--keys-only", "--consistency=s"];
        let out = tokio::task::block_in_place(|| Etcdctl::new(CtlVersion::V34, [url]).run(&args));
        out.success()
            .then(|| out.stdout.lines().filter(|l| !l.is_empty()).map(String::from).collect())
    }

    /// Asserts member `pod` itself has `keys`.
    fn assert_member_has(&self, name: &str, pod: &str, prefix: &str, keys: &[String]) {
        let stored = self.member_keys(name, pod, prefix).unwrap_or_default();
        let missing: Vec<&String> = keys.iter().filter(|k| !stored.contains(*k)).collect();
        assert!(missing.is_empty(), "{pod} lacks {missing:?}");
    }

    /// The executable the container of `pod` runs.
    fn executable(&self, pod: &str) -> Option<PathBuf> {
        let pid = self.kubelet.container_pid(NS, pod, "oxcd")?;
        std::fs::read_link(format!("/proc/{pid}/exe")).ok()
    }

    /// Whether pod `pod` is Ready.
    async fn pod_ready(&self, pod: &str) -> bool {
        let pods: Api<Pod> = Api::namespaced(self.cp.client(), NS);
        let Ok(p) = pods.get(pod).await else { return false };
        let statuses = p.status.and_then(|s| s.container_statuses).unwrap_or_default();
        statuses.first().is_some_and(|c| c.ready)
    }

    /// How many times the kubelet restarted the container of `pod` (its status says).
    async fn restarts(&self, pod: &str) -> Option<i32> {
        let pods: Api<Pod> = Api::namespaced(self.cp.client(), NS);
        let p = pods.get(pod).await.ok()?;
        Some(p.status?.container_statuses?.first()?.restart_count)
    }

    /// The operator crashes (mid-step, nothing released) and starts again, as a crashed
    /// container is restarted in its pod: same identity, so it takes its own Lease back at
    /// once, and must carry on from what the cluster and the objects say.
    async fn crash_and_restart_operator(&mut self) {
        let op = self.operator.take().expect("a running operator");
        let identity = op.identity.clone();
        op.crash().await;
        self.operator = Some(Operator::start(self.cp.client(), &identity));
    }

    /// Asserts every key of `acked` (acknowledged puts of [`start_writer`]) is stored.
    fn assert_acked_kept(&self, name: &str, acked: &[String]) {
        assert!(acked.len() > 10, "the writer made no progress: {} writes", acked.len());
        let out = self.ctl(name, &["get", "w-", "--prefix", "--keys-only"]);
        let stored: BTreeSet<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
        let lost: Vec<&String> = acked.iter().filter(|k| !stored.contains(k.as_str())).collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }

    /// The reasons of the Events on EtcdCluster `name`, as `kubectl get events` lists them.
    fn event_reasons(&self, name: &str) -> Vec<String> {
        let out = self.cp.kubectl_run(&[
            "get",
            "events.events.k8s.io",
            "-n",
            NS,
            "-o",
            "jsonpath={range .items[*]}{.regarding.kind}/{.regarding.name} {.reason}{\"\\n\"}{end}",
        ]);
        out.assert_success();
        let prefix = format!("EtcdCluster/{name} ");
        out.stdout.lines().filter_map(|l| l.strip_prefix(&prefix)).map(String::from).collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(op) = self.operator.take() {
            op.kill();
        }
    }
}

/// The client Service URL of cluster `name`, as users reach it.
fn client_url(name: &str) -> String {
    format!("http://{name}-client.{NS}.svc:2379")
}

/// `etcdctl get` output (key and value lines) as a map.
fn pairs(stdout: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = stdout.lines().collect();
    lines.chunks(2).filter_map(|c| Some((c.first()?.to_string(), c.get(1)?.to_string()))).collect()
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:03}")).collect()
}

fn cluster_yaml(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: {name}\n  \
         namespace: {NS}\nspec:\n  replicas: {replicas}\n"
    )
}

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../operator/examples/etcdcluster.yaml"
    ))
    .expect("operator/examples/etcdcluster.yaml")
}

fn seconds(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

/// Day one and day two of the example cluster, each step checked through the client Service
/// with the keys written before: `kubectl apply` → 3 Ready members; invalid edits refused
/// with their message; a killed process and a deleted pod come back as the same member with
/// their data; a lost volume is replaced by a fresh member; an upgrade to a second oxcd build
/// rolls one member at a time, leader last; a larger storage size is reported, not forced on
/// volumes whose class cannot grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_runs_the_example_through_faults_and_an_upgrade() {
    let mut rig = Rig::start().await;
    let name = "example";

    // kubectl apply → 3 ready members; etcdctl through the Service; kubectl get.
    let t = Instant::now();
    rig.apply(&example());
    let status = rig.wait_ready(name, 3).await;
    eprintln!("apply → 3 ready members: {}", seconds(t));
    let leader = status.leader.clone().expect("a leader");
    assert!(status.cluster_id.is_some());
    let first = keys("a/", 20);
    rig.put_all(name, &first);
    rig.assert_kept(name, "a/", &first);
    for o in 0..3 {
        rig.assert_member_has(name, &format!("{name}-{o}"), "a/", &first);
    }
    let table = rig.cp.kubectl_run(&["get", "etcdclusters", "-n", NS]);
    table.assert_success();
    let header: Vec<&str> = table.stdout.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "LEADER", "VERSION", "PHASE", "AGE"], "{}", table.stdout);
    let row: Vec<&str> = table.stdout.lines().nth(1).unwrap_or("").split_whitespace().collect();
    assert_eq!(&row[..5], [name, "3/3", leader.as_str(), env!("CARGO_PKG_VERSION"), "Running"]);

    // Invalid objects and edits are refused at admission, with a person's message.
    let out = rig.cp.kubectl_input(&["apply", "-f", "-"], Some(&cluster_yaml("bad", 10)));
    assert!(!out.success());
    assert!(out.stderr.contains("spec.replicas must be between 1 and 9"), "{}", out.stderr);
    let shrink = example().replace("size: 1Gi", "size: 512Mi");
    let out = rig.cp.kubectl_input(&["apply", "-f", "-"], Some(&shrink));
    assert!(!out.success());
    assert!(out.stderr.contains("spec.storage.size cannot shrink"), "{}", out.stderr);

    // A killed process is restarted by the kubelet and rejoins as the same member.
    let ids = rig.member_ids(name);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let victim = format!("{name}-1");
    assert!(rig.kubelet.kill_container(NS, &victim, "oxcd"), "no process to kill");
    let during = keys("b/", 10);
    rig.put_all(name, &during);
    rig.wait_ready(name, 3).await;
    assert_eq!(rig.member_ids(name), ids, "a restarted process rejoins as the same member");
    rig.assert_member_has(name, &victim, "a/", &first);
    rig.assert_member_has(name, &victim, "b/", &during);

    // A deleted pod comes back (same volume) as the same member with its data.
    let victim = format!("{name}-2");
    rig.cp.kubectl_run(&["delete", "pod", "-n", NS, &victim]).assert_success();
    poll_some(WAIT, || async { rig.pod_ready(&victim).await.then_some(()) })
        .await
        .expect("the pod is back");
    rig.wait_ready(name, 3).await;
    assert_eq!(rig.member_ids(name), ids, "a recreated pod with its volume is the same member");
    rig.assert_member_has(name, &victim, "a/", &first);
    rig.assert_member_has(name, &victim, "b/", &during);

    // A lost volume: the member is removed and its ordinal re-added as a fresh learner, which
    // gets every key from the others.
    let t = Instant::now();
    let victim = format!("{name}-2");
    rig.cp
        .kubectl_run(&["delete", "pvc", "-n", NS, &format!("data-{victim}"), "--wait=false"])
        .assert_success();
    rig.cp.kubectl_run(&["delete", "pod", "-n", NS, &victim]).assert_success();
    let replaced = poll_some(WAIT, || async {
        let ids_now = rig.member_ids(name);
        let fresh = ids_now.get(&victim).is_some_and(|id| Some(id) != ids.get(&victim));
        (ids_now.len() == 3 && fresh).then_some(ids_now)
    })
    .await
    .expect("the member on the lost volume is replaced");
    rig.wait_ready(name, 3).await;
    eprintln!("lost volume → fresh member ready: {}", seconds(t));
    for o in 0..2 {
        let pod = format!("{name}-{o}");
        assert_eq!(replaced.get(&pod), ids.get(&pod), "the others keep their ids");
    }
    rig.assert_member_has(name, &victim, "a/", &first);
    rig.assert_kept(name, "b/", &during);

    // An upgrade to the second build: one member at a time, the leader last, each member on
    // the new binary afterwards, identities and data kept, under writes; the operator crashes
    // and restarts after the first and after the second member moved, and carries on.
    let before = rig.wait_ready(name, 3).await;
    let leader = before.leader.clone().expect("a leader");
    let ids = rig.member_ids(name);
    for o in 0..3 {
        let exe = rig.executable(&format!("{name}-{o}")).expect("a running member");
        assert_ne!(exe, rig.next_binary);
    }
    let t = Instant::now();
    let (stop, writer) = start_writer(name);
    rig.patch_spec(name, serde_json::json!({ "version": NEXT })).await;
    let order = upgrade_order(&mut rig, name, &[1, 2]).await;
    let after = rig.wait_ready(name, 3).await;
    let _ = stop.send(true);
    let acked = writer.await.expect("writer");
    eprintln!(
        "upgrade of 3 members to a second build, the operator crashed twice: {}, order \
         {order:?}, {} acknowledged writes",
        seconds(t),
        acked.len()
    );
    rig.assert_acked_kept(name, &acked);
    assert_eq!(order.last(), Some(&leader), "the leader restarts last: {order:?}");
    assert_eq!(after.current_version.as_deref(), Some(NEXT));
    for o in 0..3 {
        let pod = format!("{name}-{o}");
        assert_eq!(rig.executable(&pod).as_deref(), Some(rig.next_binary.as_path()), "{pod}");
    }
    assert_eq!(rig.member_ids(name), ids, "upgraded members keep their identity");
    rig.assert_kept(name, "a/", &first);
    rig.assert_kept(name, "b/", &during);

    // A larger size: the StatefulSet's claim template stays (the API refuses changing it) and
    // the volumes, whose class cannot grow on the rig, are reported as such.
    rig.patch_spec(name, serde_json::json!({ "storage": { "size": "2Gi" } })).await;
    let cond = poll_some(WAIT, || async {
        let s = rig.status(name).await?;
        let c = s.conditions.iter().find(|c| c.type_ == "VolumesResized")?.clone();
        (c.reason == "ExpansionNotAllowed" && s.phase.as_deref() == Some("Running")).then_some(c)
    })
    .await
    .expect("the volume condition says they cannot grow");
    assert!(cond.message.contains("data-example-0"), "{}", cond.message);
    rig.put_all(name, &keys("c/", 3));
    let events = rig.event_reasons(name);
    for reason in ["MemberRemoved", "MemberAdded", "MemberPromoted", "PodRestarted"] {
        assert!(events.iter().any(|e| e == reason), "no {reason} Event in {events:?}");
    }
}

/// The order in which the pods of `name` come back on version [`NEXT`]; the operator crashes
/// and restarts when the number of pods on it first reaches each of `crash_at`.
async fn upgrade_order(rig: &mut Rig, name: &str, crash_at: &[usize]) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(rig.cp.client(), NS);
    let mut order: Vec<String> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while order.len() < 3 && Instant::now() < deadline {
        for o in 0..3 {
            let pod = format!("{name}-{o}");
            let Ok(p) = pods.get(&pod).await else { continue };
            let v = p.labels().get("oxcd.dev/version").cloned();
            if v.as_deref() == Some(NEXT) && !order.contains(&pod) {
                order.push(pod);
                if crash_at.contains(&order.len()) {
                    rig.crash_and_restart_operator().await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(order.len(), 3, "not every pod moved to the new version: {order:?}");
    order
}

/// Writes `w-<i>` keys through the client Service until stopped; returns the keys whose put
/// was acknowledged.
fn start_writer(
    name: &str,
) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<Vec<String>>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let endpoint = client_url(name);
    let task = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut client: Option<etcd_client::Client> = None;
        let mut i = 0u64;
        while !*stop_rx.borrow() {
            if client.is_none() {
                let opts = etcd_client::ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(5));
                client = etcd_client::Client::connect([endpoint.as_str()], Some(opts)).await.ok();
                if client.is_none() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            let key = format!("w-{i:06}");
            match client.as_mut().expect("connected").put(key.as_str(), "v", None).await {
                Ok(_) => acked.push(key),
                // Unknown outcome: the key is not counted as acknowledged; a new connection
                // (the Service may now name another member) and a new key follow.
                Err(_) => client = None,
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked
    });
    (stop_tx, task)
}

/// The name of the replica holding the operator's Lease.
async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), NS);
    leases.get("oxcd-operator").await.ok()?.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// Scale 1→3→5→3 through `kubectl scale` under a continuous write load through the client
/// Service, with two operator replicas: the leading one crashes mid-scale (3→5) and the
/// standby finishes it once the Lease expires; then the new leader stops gracefully mid-way
/// (5→3) and a third replica takes over at once. Every acknowledged write is read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_scales_under_writes_while_its_replicas_crash_and_hand_over() {
    let mut rig = Rig::start().await;
    let name = "scale";
    let mut standby = Some(Operator::start(rig.cp.client(), "operator-b"));
    let t = Instant::now();
    rig.apply(&cluster_yaml(name, 1));
    rig.wait_ready(name, 1).await;
    eprintln!("apply → 1 ready member: {}", seconds(t));
    let (stop, writer) = start_writer(name);
    let scale = |n: u32| {
        rig.cp
            .kubectl_run(&[
                "scale",
                "-n",
                NS,
                &format!("etcdcluster/{name}"),
                &format!("--replicas={n}"),
            ])
            .assert_success();
    };

    let t = Instant::now();
    scale(3);
    rig.wait_ready(name, 3).await;
    eprintln!("scale 1→3: {}", seconds(t));

    // 3→5; the leading replica crashes once the first new member is listed.
    let t = Instant::now();
    scale(5);
    poll_some(WAIT, || async { (rig.status(name).await?.members.len() >= 4).then_some(()) })
        .await
        .expect("scale-up started");
    let holder = lease_holder(&rig.cp.client()).await.expect("a replica leads");
    let a = rig.operator.take().expect("operator-a");
    let b = standby.take().expect("operator-b");
    let (crashed, survivor) = if a.identity == holder { (a, b) } else { (b, a) };
    crashed.kill();
    rig.wait_ready(name, 5).await;
    eprintln!("scale 3→5 with the leading operator crashed mid-way: {}", seconds(t));
    assert_eq!(lease_holder(&rig.cp.client()).await.as_deref(), Some(survivor.identity.as_str()));

    // 5→3; the leader stops gracefully once the first member is gone; a new replica, started
    // as a standby, takes the released Lease at once.
    let third = Operator::start(rig.cp.client(), "operator-c");
    let t = Instant::now();
    scale(3);
    poll_some(WAIT, || async { (rig.status(name).await?.members.len() <= 4).then_some(()) })
        .await
        .expect("scale-down started");
    survivor.stop().await;
    let next = poll_some(WAIT, || async {
        lease_holder(&rig.cp.client()).await.filter(|h| h == "operator-c")
    })
    .await;
    assert_eq!(next.as_deref(), Some("operator-c"), "the standby takes the released Lease");
    rig.operator = Some(third);
    rig.wait_ready(name, 3).await;
    eprintln!("scale 5→3 with a graceful operator handover mid-way: {}", seconds(t));

    let _ = stop.send(true);
    let acked = writer.await.expect("writer");
    rig.assert_acked_kept(name, &acked);
    eprintln!("{} acknowledged writes during the scaling, all present", acked.len());
    // The removed members' volumes are deleted (policy Delete): gone, or still carrying their
    // deletion timestamp while the pvc-protection controller catches up.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(rig.cp.client(), NS);
    for ordinal in [3, 4] {
        let claim = format!("data-{name}-{ordinal}");
        if let Ok(c) = pvcs.get(&claim).await {
            assert!(c.metadata.deletion_timestamp.is_some(), "{claim} was not deleted");
        }
    }
    for ordinal in [0, 1, 2] {
        let c = pvcs.get(&format!("data-{name}-{ordinal}")).await.expect("kept volume");
        assert!(c.metadata.deletion_timestamp.is_none());
    }
}

/// Quorum loss for good: two of three members lose their volumes and their processes are
/// killed (restarted on empty volumes, they cannot rejoin); once they have been down past
/// `recovery.memberLostAfterSeconds`, the operator rebuilds from the survivor with
/// `--force-new-cluster` and grows back learner-first; every key the survivor had is served,
/// and status and Events say what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_recovers_from_quorum_loss_from_the_surviving_member() {
    let mut rig = Rig::start().await;
    let name = "quorum";
    let yaml = format!("{}  recovery:\n    memberLostAfterSeconds: 10\n", cluster_yaml(name, 3));
    rig.apply(&yaml);
    let status = rig.wait_ready(name, 3).await;
    let written = keys("q/", 20);
    rig.put_all(name, &written);
    let before = rig.member_ids(name);
    let (survivor, lost) =
        lose_a_majority(&rig, name, &status.leader.expect("a leader"), &written).await;
    let pods: Vec<String> = (0..3).map(|o| format!("{name}-{o}")).collect();

    let t = Instant::now();
    let started =
        poll_some(WAIT, || async { rig.status(name).await?.recovery.is_some().then_some(()) })
            .await;
    if started.is_none() {
        let s = rig.status(name).await;
        rig.diagnose(name);
        panic!("no recovery started; status {s:#?}");
    }
    eprintln!("quorum loss → recovery started: {}", seconds(t));
    let recovering = rig.status(name).await.expect("status");
    assert_eq!(recovering.phase.as_deref(), Some("Recovering"), "{recovering:#?}");
    let degraded = recovering.conditions.iter().find(|c| c.type_ == "Degraded").expect("Degraded");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "QuorumLost"));
    // The operator crashes right after the recovery started, and again at its second stage
    // (the survivor leads alone and restarts without --force-new-cluster) or, if that went
    // by between two looks, once it ended: each new process carries on from status.
    rig.crash_and_restart_operator().await;
    let stage = poll_some(WAIT, || async {
        match rig.status(name).await?.recovery {
            Some(r) if r.restarting => Some("the survivor restarting without the flag"),
            Some(_) => None,
            None => Some("the recovery ended"),
        }
    })
    .await
    .expect("the recovery goes on after the operator restarted");
    rig.crash_and_restart_operator().await;
    eprintln!("operator crashed at the recovery's start and at {stage}: {}", seconds(t));

    let grown = poll_some(Duration::from_secs(150), || async {
        let s = rig.status(name).await?;
        (s.ready_replicas == 3 && s.members.len() == 3).then_some(())
    })
    .await;
    // Recovered to 3 healthy members takes 35-45 s here: 150 s is far beyond it, and well
    // short of a learner's 300 s start grace (a joiner refused "already bootstrapped" by the
    // survivor, which still listed the lost members under the same peer URLs, was dropped and
    // re-added only after it: an oxcd bug).
    if grown.is_none() {
        rig.diagnose(name);
        panic!("the cluster did not grow back to 3 members: {:#?}", rig.status(name).await);
    }
    let after_status = rig.wait_ready(name, 3).await;
    eprintln!("quorum loss → 3 healthy members again: {}", seconds(t));
    assert!(after_status.recovery.is_none());
    let after = rig.member_ids(name);
    assert_eq!(after.get(&survivor), before.get(&survivor), "the survivor keeps its id");
    for pod in &lost {
        assert_ne!(after.get(pod), before.get(pod), "{pod} comes back as a new member");
    }
    rig.assert_kept(name, "q/", &written);
    for pod in &pods {
        rig.assert_member_has(name, pod, "q/", &written);
    }
    let events = rig.event_reasons(name);
    let reasons =
        ["FounderRestarted", "RecoveryStarted", "Recovered", "MemberAdded", "MemberPromoted"];
    for reason in reasons {
        assert!(events.iter().any(|e| e == reason), "no {reason} Event in {events:?}");
    }
}

/// Quorum lost for good under `recovery.quorumLoss: Manual`: the operator rebuilds nothing
/// (no recovery recorded, the survivor keeps running as a member of the old three, with its
/// data), and status, conditions and a Warning Event say what a person must do. The person
/// does what they say (`spec.recovery.quorumLoss: Auto`), and the cluster is rebuilt from the
/// survivor with every key it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_only_reports_quorum_loss_under_a_manual_policy_until_told_to_rebuild() {
    let rig = Rig::start().await;
    let name = "manual";
    let yaml = format!(
        "{}  recovery:\n    quorumLoss: Manual\n    memberLostAfterSeconds: 10\n",
        cluster_yaml(name, 3)
    );
    rig.apply(&yaml);
    let status = rig.wait_ready(name, 3).await;
    let written = keys("q/", 20);
    rig.put_all(name, &written);
    let before = rig.member_ids(name);
    let (survivor, lost) =
        lose_a_majority(&rig, name, &status.leader.expect("a leader"), &written).await;

    // Reported, with what to do, where a person looks: phase, conditions, lastStep, Events.
    let t = Instant::now();
    let reported = poll_some(WAIT, || async {
        let s = rig.status(name).await?;
        s.last_step.as_ref()?.contains("quorumLoss is Manual").then_some(s)
    })
    .await;
    let Some(reported) = reported else {
        rig.diagnose(name);
        panic!("quorum loss under Manual never reported: {:#?}", rig.status(name).await);
    };
    eprintln!("quorum loss → reported for a person: {}", seconds(t));
    assert_eq!(reported.phase.as_deref(), Some("QuorumLost"), "{reported:#?}");
    let cond = |s: &EtcdClusterStatus, type_: &str| {
        s.conditions.iter().find(|c| c.type_ == type_).cloned().expect(type_)
    };
    let degraded = cond(&reported, "Degraded");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "QuorumLost"));
    assert!(degraded.message.contains("set spec.recovery.quorumLoss to Auto"), "{degraded:?}");
    assert!(degraded.message.contains("kubectl patch etcdcluster"), "{degraded:?}");
    assert_eq!(cond(&reported, "Available").status, "False");
    poll_some(WAIT, || async {
        rig.event_reasons(name).iter().any(|e| e == "ManualRecoveryRequired").then_some(())
    })
    .await
    .expect("a ManualRecoveryRequired Event");
    let notes = rig.cp.kubectl_run(&[
        "get",
        "events.events.k8s.io",
        "-n",
        NS,
        "--field-selector",
        "reason=ManualRecoveryRequired",
        "-o",
        "jsonpath={.items[*].note}",
    ]);
    assert!(notes.stdout.contains("quorumLoss to Auto"), "{notes}");

    // Nothing is rebuilt: over several reconciles (one every 5 s while waiting) no recovery is
    // recorded and the survivor still runs as a member of the old three, with every key.
    let survivor_url = format!("http://{survivor}.{name}.{NS}.svc:2379");
    let survivor_members = || {
        let ctl = Etcdctl::new(CtlVersion::V34, [survivor_url.clone()]);
        let out = tokio::task::block_in_place(|| ctl.run(&["member", "list"]));
        out.assert_success();
        out.stdout.lines().filter(|l| !l.is_empty()).count()
    };
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(20) {
        let s = rig.status(name).await.expect("status");
        assert!(s.recovery.is_none(), "a recovery started under Manual: {s:#?}");
        assert_eq!(s.phase.as_deref(), Some("QuorumLost"));
        assert_eq!(survivor_members(), 3, "the survivor's membership was changed");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let events = rig.event_reasons(name);
    assert!(!events.iter().any(|e| e == "RecoveryStarted"), "{events:?}");
    rig.assert_member_has(name, &survivor, "q/", &written);

    // The documented action: the policy to Auto. The operator rebuilds from the survivor.
    let t = Instant::now();
    rig.patch_spec(name, serde_json::json!({ "recovery": { "quorumLoss": "Auto" } })).await;
    let after_status = rig.wait_ready(name, 3).await;
    eprintln!("quorumLoss set to Auto → 3 healthy members: {}", seconds(t));
    assert!(after_status.recovery.is_none());
    let after = rig.member_ids(name);
    assert_eq!(after.get(&survivor), before.get(&survivor), "the survivor keeps its id");
    for pod in &lost {
        assert_ne!(after.get(pod), before.get(pod), "{pod} comes back as a new member");
    }
    rig.assert_kept(name, "q/", &written);
    for o in 0..3 {
        rig.assert_member_has(name, &format!("{name}-{o}"), "q/", &written);
    }
    let events = rig.event_reasons(name);
    for reason in ["RecoveryStarted", "Recovered", "MemberAdded", "MemberPromoted"] {
        assert!(events.iter().any(|e| e == reason), "no {reason} Event in {events:?}");
    }
}

/// A change that cannot finish: an upgrade to an image the kubelet cannot run (its pod stays
/// in ErrImagePull). Past `spec.progressDeadlineSeconds` the change is reported failed as
/// Kubernetes reports a rollout (`Progressing=False`, `ProgressDeadlineExceeded`, a Warning
/// Event), while the two other members keep serving every key and membership is untouched.
/// A corrected spec (a version that runs) then completes: the stuck pod is replaced first,
/// every member ends on the new binary with its identity and data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_reports_a_change_past_its_deadline_and_completes_a_corrected_one() {
    let rig = Rig::start().await;
    let name = "deadline";
    let yaml = format!("{}  progressDeadlineSeconds: 20\n", cluster_yaml(name, 3));
    rig.apply(&yaml);
    rig.wait_ready(name, 3).await;
    let written = keys("d/", 20);
    rig.put_all(name, &written);
    let ids = rig.member_ids(name);

    let broken = BROKEN;
    let t = Instant::now();
    rig.patch_spec(name, serde_json::json!({ "version": broken })).await;
    let failed = poll_some(WAIT, || async {
        let s = rig.status(name).await?;
        let p = s.conditions.iter().find(|c| c.type_ == "Progressing")?;
        (p.reason == "ProgressDeadlineExceeded").then_some(s)
    })
    .await;
    let Some(failed) = failed else {
        rig.diagnose(name);
        panic!("the stuck change was never reported failed: {:#?}", rig.status(name).await);
    };
    eprintln!("upgrade to an image that cannot run → reported failed: {}", seconds(t));
    let progressing = failed.conditions.iter().find(|c| c.type_ == "Progressing").expect("it");
    assert_eq!(progressing.status, "False");
    assert!(progressing.message.contains(&format!("version {broken}")), "{progressing:?}");
    let target = failed.target.clone().expect("the failed change stays recorded");
    assert_eq!(target.version, broken);
    assert!(target.failed.is_some(), "{target:?}");
    let available = failed.conditions.iter().find(|c| c.type_ == "Available").expect("it");
    assert_eq!(available.status, "True", "two members keep the quorum: {available:?}");
    // What a person sees on the stuck pod.
    let pods: Api<Pod> = Api::namespaced(rig.cp.client(), NS);
    let stuck = poll_some(WAIT, || async {
        let all = pods.list(&Default::default()).await.ok()?;
        all.items.into_iter().find_map(|p| {
            let cs = p.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
            let reason = cs.state?.waiting?.reason?;
            (p.labels().get("oxcd.dev/version").map(String::as_str) == Some(broken))
                .then(|| (p.name_any(), reason))
        })
    })
    .await
    .expect("a pod on the broken version");
    eprintln!("stuck pod: {stuck:?}");
    assert!(stuck.1.contains("ErrImagePull") || stuck.1.contains("ImagePullBackOff"), "{stuck:?}");
    poll_some(WAIT, || async {
        rig.event_reasons(name).iter().any(|e| e == "ProgressDeadlineExceeded").then_some(())
    })
    .await
    .expect("a ProgressDeadlineExceeded Event");
    // Membership untouched, every key served by the others.
    assert_eq!(rig.member_ids(name), ids, "membership changed for a stuck upgrade");
    rig.assert_kept(name, "d/", &written);
    let more = keys("e/", 5);
    rig.put_all(name, &more);

    // The corrected spec: a version that runs.
    let t = Instant::now();
    rig.patch_spec(name, serde_json::json!({ "version": NEXT })).await;
    let done = poll_some(WAIT, || async {
        let s = rig.status(name).await?;
        let ready = s.phase.as_deref() == Some("Running") && s.ready_replicas == 3;
        (ready && s.current_version.as_deref() == Some(NEXT)).then_some(s)
    })
    .await;
    let Some(done) = done else {
        rig.diagnose(name);
        panic!("the corrected upgrade did not complete: {:#?}", rig.status(name).await);
    };
    eprintln!("corrected spec → every member on {NEXT}: {}", seconds(t));
    assert!(done.target.is_none(), "{:?}", done.target);
    let progressing = done.conditions.iter().find(|c| c.type_ == "Progressing").expect("it");
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "Done"));
    for o in 0..3 {
        let pod = format!("{name}-{o}");
        assert_eq!(rig.executable(&pod).as_deref(), Some(rig.next_binary.as_path()), "{pod}");
    }
    assert_eq!(rig.member_ids(name), ids, "upgraded members keep their identity");
    rig.assert_kept(name, "d/", &written);
    rig.assert_kept(name, "e/", &more);
    for o in 0..3 {
        rig.assert_member_has(name, &format!("{name}-{o}"), "d/", &written);
    }
}

/// Two of the three members of `name` are lost for good, the survivor being a follower: the
/// leader and the other follower lose their volumes and their processes are killed (restarted
/// on empty volumes, they cannot rejoin), then their pods are deleted. Returns the survivor
/// and the lost pods, once the survivor had every key of `written`.
async fn lose_a_majority(
    rig: &Rig,
    name: &str,
    leader: &str,
    written: &[String],
) -> (String, Vec<String>) {
    let pods: Vec<String> = (0..3).map(|o| format!("{name}-{o}")).collect();
    let survivor = pods.iter().rfind(|p| *p != leader).expect("a follower").clone();
    let lost: Vec<String> = pods.iter().filter(|p| **p != survivor).cloned().collect();
    eprintln!("{} keys written; {survivor} survives, {lost:?} are lost", written.len());
    // The survivor has every acknowledged key (it may lag the leader by a moment).
    poll_some(WAIT, || async {
        let has = rig.member_keys(name, &survivor, "q/")?;
        written.iter().all(|k| has.contains(k)).then_some(())
    })
    .await
    .expect("the survivor has every key");
    for pod in &lost {
        let restarts = rig.restarts(pod).await.expect("a running member");
        rig.kubelet.lose_claim(NS, &format!("data-{pod}")).expect("lose the volume");
        assert!(rig.kubelet.kill_container(NS, pod, "oxcd"), "no process to kill in {pod}");
        // The kubelet restarts the process in the same pod, on the emptied volume, with the
        // flags the pod was created with: pod 0 (always lost here) must not found a second
        // cluster under the first one's ids, which the survivor would follow (an operator
        // bug: the founding pod kept `--initial-cluster-state=new`). Then the pod goes.
        poll_some(WAIT, || async { (rig.restarts(pod).await? > restarts).then_some(()) })
            .await
            .unwrap_or_else(|| panic!("the kubelet never restarted {pod}"));
        rig.cp.kubectl_run(&["delete", "pod", "-n", NS, pod, "--wait=false"]).assert_success();
    }
    (survivor, lost)
}

/// The operator's `/metrics` page (bounded retries: the server starts with the operator).
async fn scrape(op: &Operator) -> String {
    let addr = op.metrics.clone();
    let page = poll_some(WAIT, || {
        let addr = addr.clone();
        async move {
            let got = tokio::task::spawn_blocking(move || oxcd_e2e::http::get(&addr, "/metrics"));
            got.await.ok().flatten().filter(|(code, _)| *code == 200).map(|(_, body)| body)
        }
    })
    .await;
    page.expect("/metrics answers")
}

/// The value of the sample `series` (name and labels exactly as rendered) on a metrics page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Day two on a cluster whose StorageClass allows expansion, with defragmentation every
/// minute: the operator's metrics report the cluster; the PodDisruptionBudget refuses to evict
/// a member while another is down, and lets one go once all are up, the evicted member coming
/// back as itself with its data; a larger `spec.storage.size` grows every volume in place (same
/// members, same data); each member is defragmented once a minute, the leader last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_keeps_a_cluster_through_evictions_volume_growth_and_defragmentation() {
    let rig = Rig::start().await;
    let name = "maint";
    let class = "expandable";
    rig.apply(&format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {class}\n\
         provisioner: oxcd.io/process-kubelet\nallowVolumeExpansion: true\n"
    ));
    let t = Instant::now();
    rig.apply(&format!(
        "{}  storage:\n    size: 1Gi\n    storageClassName: {class}\n  \
         maintenance:\n    defragmentEveryMinutes: 1\n",
        cluster_yaml(name, 3)
    ));
    let status = rig.wait_ready(name, 3).await;
    eprintln!("apply → 3 ready members: {}", seconds(t));
    let (stop_defrag, defrags) = watch_defragmentation(rig.clusters(), name);
    let written = keys("m/", 20);
    rig.put_all(name, &written);
    let ids = rig.member_ids(name);

    // The operator's metrics report the cluster as it is.
    let op = rig.operator.as_ref().expect("operator");
    let labels = format!("{{cluster=\"{name}\",namespace=\"{NS}\"}}");
    let page = scrape(op).await;
    assert_eq!(sample(&page, "oxcd_operator_is_leader"), Some(1.0), "{page}");
    assert_eq!(sample(&page, &format!("oxcd_operator_cluster_members{labels}")), Some(3.0));
    assert_eq!(sample(&page, &format!("oxcd_operator_cluster_healthy_members{labels}")), Some(3.0));
    assert_eq!(sample(&page, &format!("oxcd_operator_cluster_has_leader{labels}")), Some(1.0));
    assert!(sample(&page, &format!("oxcd_operator_reconciles_total{labels}")) > Some(0.0));
    assert!(sample(&page, "oxcd_operator_reconcile_duration_seconds_count") > Some(0.0));

    // The PodDisruptionBudget: while one member is down (its process stopped, so its pod turns
    // unready), evicting another is refused; once it is back, a member may be evicted, and it
    // comes back as the same member with its data.
    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(rig.cp.client(), NS);
    let allowed = |n: i32| {
        let pdbs = pdbs.clone();
        async move {
            poll_some(WAIT, || async {
                let s = pdbs.get(name).await.ok()?.status?;
                (s.disruptions_allowed == Some(n)).then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("the PodDisruptionBudget never allowed {n} disruption(s)"))
        }
    };
    let t = Instant::now();
    allowed(1).await;
    eprintln!("PodDisruptionBudget allows 1: {}", seconds(t));
    let leader = status.leader.clone().expect("a leader");
    let followers: Vec<String> =
        (0..3).map(|o| format!("{name}-{o}")).filter(|p| *p != leader).collect();
    let down = rig.kubelet.container_pid(NS, &followers[0], "oxcd").expect("a running member");
    // SAFETY: signalling a process this test's kubelet started.
    assert_eq!(unsafe { libc::kill(down, libc::SIGSTOP) }, 0);
    allowed(0).await;
    eprintln!("a member stopped → the PodDisruptionBudget allows 0: {}", seconds(t));
    // kube-rs retries a 429 up to 15 times with growing back-off (minutes): a refused eviction
    // is seen through a client that does not.
    let pods: Api<Pod> = Api::namespaced(rig.client_without_retries().await, NS);
    let evict = kube::api::EvictParams::default();
    match pods.evict(&followers[1], &evict).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 429, "{e:?}");
            assert!(e.message.contains("disruption budget"), "{}", e.message);
        }
        other => panic!("an eviction with a member down was not refused: {other:?}"),
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(down, libc::SIGCONT) }, 0);
    allowed(1).await;
    eprintln!("the member continued → allows 1 again: {}", seconds(t));
    pods.evict(&followers[1], &evict).await.expect("an eviction with every member up");
    rig.wait_ready(name, 3).await;
    poll_some(WAIT, || async { rig.pod_ready(&followers[1]).await.then_some(()) })
        .await
        .expect("the evicted pod is back");
    assert_eq!(rig.member_ids(name), ids, "an evicted member comes back as itself");
    poll_some(WAIT, || async {
        let has = rig.member_keys(name, &followers[1], "m/")?;
        written.iter().all(|k| has.contains(k)).then_some(())
    })
    .await
    .expect("the evicted member has every key");
    eprintln!("the evicted member is back with its data: {}", seconds(t));

    // Growing the volumes: each claim asks for, and gets, the new size; same members, same
    // data.
    let t = Instant::now();
    rig.patch_spec(name, serde_json::json!({ "storage": { "size": "2Gi" } })).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(rig.cp.client(), NS);
    let cond = poll_some(WAIT, || async {
        let s = rig.status(name).await?;
        let c = s.conditions.iter().find(|c| c.type_ == "VolumesResized")?.clone();
        let grown = c.reason == "AtSize" && c.message.contains("2Gi");
        (grown && c.status == "True").then_some(c)
    })
    .await
    .expect("every volume reaches the new size");
    eprintln!("volumes grown 1Gi → 2Gi: {} ({})", seconds(t), cond.message);
    for o in 0..3 {
        let claim = pvcs.get(&format!("data-{name}-{o}")).await.expect("the claim");
        let requested = claim.spec.as_ref().and_then(|s| s.resources.as_ref()?.requests.clone());
        let capacity = claim.status.as_ref().and_then(|s| s.capacity.clone());
        let two = k8s_openapi::apimachinery::pkg::api::resource::Quantity("2Gi".into());
        assert_eq!(requested.and_then(|r| r.get("storage").cloned()), Some(two.clone()));
        assert_eq!(capacity.and_then(|c| c.get("storage").cloned()), Some(two));
    }
    rig.wait_ready(name, 3).await;
    assert_eq!(rig.member_ids(name), ids, "volumes grow under the same members");
    rig.assert_kept(name, "m/", &written);

    // Defragmentation, once a minute from when a member was first seen: each member in turn,
    // the leader last.
    let t = Instant::now();
    let _ = stop_defrag.send(true);
    let order = defrags.await.expect("the defragmentation watcher");
    eprintln!("first round of defragmentation seen {} later: {order:?}", seconds(t));
    assert!(order.len() >= 3, "fewer than 3 defragmentations seen: {order:?}");
    let names: BTreeSet<&String> = order[..3].iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 3, "each member once in the first round: {order:?}");
    let leaders: Vec<bool> = order[..3].iter().map(|(_, l)| *l).collect();
    assert_eq!(leaders, [false, false, true], "the leader last: {order:?}");
    rig.assert_kept(name, "m/", &written);
    let page = scrape(op).await;
    assert!(sample(&page, "oxcd_operator_steps_total{step=\"defragment\"}") >= Some(3.0));
    let events = rig.event_reasons(name);
    for reason in ["VolumeExpanded", "MemberDefragmented"] {
        assert!(events.iter().any(|e| e == reason), "no {reason} Event in {events:?}");
    }
}

/// Watches the members' `status.members[].lastDefragment` of cluster `name` until told to stop
/// and at least three have changed (bounded): the members defragmented, in order, each with
/// whether it led then. Defragmentation steps are seconds apart; the watch polls every 250 ms.
fn watch_defragmentation(
    clusters: Api<EtcdCluster>,
    name: &str,
) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<Vec<(String, bool)>>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let name = name.to_string();
    let task = tokio::spawn(async move {
        let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut order = Vec::new();
        let deadline = Instant::now() + WAIT;
        while !(*stop_rx.borrow() && order.len() >= 3) && Instant::now() < deadline {
            if let Some(s) = clusters.get(&name).await.ok().and_then(|c| c.status) {
                for m in &s.members {
                    let at = m.last_defragment.as_ref().map(|t| t.0.to_string());
                    match seen.insert(m.name.clone(), at.clone()) {
                        Some(before) if before != at => order.push((m.name.clone(), m.leader)),
                        _ => {}
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        order
    });
    (stop_tx, task)
}
