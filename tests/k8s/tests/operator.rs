//! The operator end to end on the rig: a real kube-apiserver (on oxcd) and
//! kube-controller-manager, the process kubelet running every member as a real `oxcd` process
//! on its own 127.x address, the operator in this process (`oxcd_operator::app::run`, the same
//! code as the binary), and stock etcdctl / etcd-client talking to the members through the
//! cluster's Services. Each test asserts the data, not only the phase.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use oxcd_e2e::etcdctl::{CtlVersion, Etcdctl};
use oxcd_k8s_rig::kubelet::{Kubelet, KubeletOptions, StopMode};
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};
use oxcd_operator::crd::EtcdCluster;

/// Namespace of every test cluster.
const NS: &str = "default";
/// Upper bound for any one condition in these tests (a loaded 2-core machine is slow).
const WAIT: Duration = Duration::from_secs(240);

/// The control plane, one kubelet and the operator.
struct Rig {
    operator: Option<Operator>,
    kubelet: Option<Kubelet>,
    cp: ControlPlane,
    /// One rig at a time in this binary (each is a whole control plane on a 2-core machine);
    /// dropped last, after everything above has stopped.
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// Serialises the rigs of this test binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An operator replica running in this process.
struct Operator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    fn start(client: Client, identity: &str) -> Operator {
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let opts = oxcd_operator::app::Options {
            metrics_addr: "127.0.0.1:0".parse().expect("address"),
            namespace: None,
            lease_namespace: Some(NS.into()),
            lease_name: "oxcd-operator".into(),
            identity: identity.into(),
        };
        let task = tokio::spawn(oxcd_operator::app::run(client, opts, async move {
            let _ = rx.await;
        }));
        Operator { stop, task }
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
}

impl Rig {
    async fn start() -> Rig {
        let serial = SERIAL.lock().await;
        // A deleted member volume must go once its pod is gone, as in a real cluster.
        let mut opts = Options::new(StorageKind::Oxcd);
        opts.controllers.push("persistentvolumeclaim-protection-controller".into());
        let cp = ControlPlane::start(opts).await.expect("control plane");
        let kubelet = Kubelet::start(cp.client(), KubeletOptions::new(cp.dir().join("kubelet")))
            .await
            .expect("kubelet");
        let crd = oxcd_operator::crd::crd_yaml();
        cp.kubectl_input(&["apply", "-f", "-"], Some(&crd)).assert_success();
        let crds: Api<CustomResourceDefinition> = Api::all(cp.client());
        wait_for(WAIT, || async {
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
        Rig { operator, kubelet: Some(kubelet), cp, _serial: serial }
    }

    fn clusters(&self) -> Api<EtcdCluster> {
        Api::namespaced(self.cp.client(), NS)
    }

    fn apply(&self, yaml: &str) {
        self.cp.kubectl_input(&["apply", "-f", "-"], Some(yaml)).assert_success();
    }

    /// Waits until `name` has `n` healthy voters, no learner, phase Running; returns the
    /// status.
    async fn wait_ready(&self, name: &str, n: usize) -> oxcd_operator::crd::EtcdClusterStatus {
        let mut last = None;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(s) = self.clusters().get(name).await.ok().and_then(|c| c.status) {
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
        panic!("{name} never had {n} ready members; last status: {last:#?}");
    }

    /// etcdctl through the cluster's Services: the client Service `<name>-client` and, since
    /// the rig can resolve only pod names of headless Services (its EndpointSlices refuse
    /// 127.0.0.0/8 addresses, so `<name>-client` has no endpoints there), the members' names
    /// under the headless peer Service.
    fn etcdctl(&self, name: &str) -> Etcdctl {
        let mut endpoints = vec![format!("http://{name}-client.{NS}.svc:2379")];
        endpoints.extend((0..3).map(|o| format!("http://{name}-{o}.{name}.{NS}.svc:2379")));
        Etcdctl::new(CtlVersion::V34, endpoints)
    }

    /// Member (name → id) as the cluster lists it.
    fn member_ids(&self, name: &str) -> BTreeMap<String, String> {
        let out = self.etcdctl(name).run(&["member", "list"]);
        out.assert_success();
        out.stdout
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(", ").collect();
                Some((f.get(2)?.to_string(), f.first()?.to_string()))
            })
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(op) = self.operator.take() {
            op.kill();
        }
    }
}

/// Polls `f` every 500 ms until it gives Some, or `limit` passes.
async fn wait_for<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_apply_example_gives_three_ready_members_and_etcdctl_works() {
    let rig = Rig::start().await;
    let start = Instant::now();
    rig.apply(&example());
    let status = rig.wait_ready("example", 3).await;
    eprintln!("apply → 3 ready members: {:.1} s", start.elapsed().as_secs_f64());
    assert!(status.leader.is_some(), "{status:#?}");
    assert!(status.cluster_id.is_some());

    let ctl = rig.etcdctl("example");
    ctl.run(&["put", "greeting", "hello from the rig"]).assert_success();
    let got = ctl.run(&["get", "greeting", "--print-value-only"]);
    got.assert_success();
    assert_eq!(got.stdout.trim(), "hello from the rig");
    // Every member has it (serializable reads on each member's own endpoint).
    for m in &status.members {
        let url = m.client_url.clone().expect("client URL");
        let out = Etcdctl::new(CtlVersion::V34, [url]).run(&[
            "get",
            "greeting",
            "--print-value-only",
            "--consistency=s",
        ]);
        assert_eq!(out.stdout.trim(), "hello from the rig", "{}", m.name);
    }
    let table = rig.cp.kubectl_run(&["get", "etcdclusters", "-n", NS]);
    table.assert_success();
    assert!(table.stdout.contains("READY") && table.stdout.contains("3/3"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_refuses_invalid_clusters_with_their_message() {
    let rig = Rig::start().await;
    let out = rig.cp.kubectl_input(&["apply", "-f", "-"], Some(&cluster_yaml("bad", 10)));
    assert!(!out.success());
    assert!(out.stderr.contains("spec.replicas must be between 1 and 9"), "{}", out.stderr);
    rig.apply(&cluster_yaml("grow", 1));
    let shrink = format!("{}  storage:\n    size: 512Mi\n", cluster_yaml("grow", 1));
    let out = rig.cp.kubectl_input(&["apply", "-f", "-"], Some(&shrink));
    assert!(!out.success());
    assert!(out.stderr.contains("spec.storage.size cannot shrink"), "{}", out.stderr);
}

/// Writes `w-<i>` keys through the client Service until stopped; returns the keys whose put
/// was acknowledged.
fn start_writer(
    name: &str,
) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<Vec<String>>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Member 0 stays through every scale step; it forwards writes to the leader.
    let endpoint = format!("http://{name}-0.{name}.{NS}.svc:2379");
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
                Ok(_) => {
                    acked.push(key);
                    i += 1;
                }
                // Unknown outcome: the key is not counted as acknowledged; a new key follows.
                Err(_) => {
                    client = None;
                    i += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked
    });
    (stop_tx, task)
}

/// Every key under `w-` as the cluster serves it (linearizable).
fn written_keys(rig: &Rig, name: &str) -> std::collections::BTreeSet<String> {
    let out = rig.etcdctl(name).run(&["get", "w-", "--prefix", "--keys-only"]);
    out.assert_success();
    out.stdout.lines().filter(|l| !l.is_empty()).map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_scales_one_three_five_three_without_losing_acknowledged_writes() {
    let rig = Rig::start().await;
    let name = "scale";
    let t = Instant::now();
    rig.apply(&cluster_yaml(name, 1));
    rig.wait_ready(name, 1).await;
    eprintln!("apply → 1 ready member: {:.1} s", t.elapsed().as_secs_f64());
    let (stop, writer) = start_writer(name);
    for n in [3u32, 5, 3] {
        let t = Instant::now();
        rig.cp
            .kubectl_run(&[
                "scale",
                "-n",
                NS,
                &format!("etcdcluster/{name}"),
                &format!("--replicas={n}"),
            ])
            .assert_success();
        rig.wait_ready(name, n as usize).await;
        eprintln!("scale to {n}: {:.1} s", t.elapsed().as_secs_f64());
    }
    let _ = stop.send(true);
    let acked = writer.await.expect("writer");
    assert!(acked.len() > 10, "the writer made no progress: {} writes", acked.len());
    let stored = written_keys(&rig, name);
    let lost: Vec<&String> = acked.iter().filter(|k| !stored.contains(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!("{} acknowledged writes, all present", acked.len());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_keeps_member_identity_across_a_killed_process_and_a_deleted_pod() {
    let rig = Rig::start().await;
    let name = "ident";
    rig.apply(&cluster_yaml(name, 3));
    rig.wait_ready(name, 3).await;
    rig.etcdctl(name).run(&["put", "before", "1"]).assert_success();
    let ids = rig.member_ids(name);
    assert_eq!(ids.len(), 3, "{ids:?}");

    assert!(
        rig.kubelet.as_ref().expect("kubelet").kill_container(NS, "ident-1", "oxcd"),
        "no process to kill"
    );
    rig.wait_ready(name, 3).await;
    assert_eq!(rig.member_ids(name), ids, "a restarted process must rejoin as the same member");

    rig.cp.kubectl_run(&["delete", "pod", "-n", NS, "ident-2"]).assert_success();
    let pods: Api<Pod> = Api::namespaced(rig.cp.client(), NS);
    wait_for(WAIT, || async {
        let p = pods.get("ident-2").await.ok()?;
        p.status.as_ref()?.container_statuses.as_ref()?.first()?.ready.then_some(())
    })
    .await
    .expect("ident-2 back");
    rig.wait_ready(name, 3).await;
    assert_eq!(rig.member_ids(name), ids, "a recreated pod with its volume is the same member");
    let got = rig.etcdctl(name).run(&["get", "before", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_replaces_a_member_whose_volume_is_lost() {
    let rig = Rig::start().await;
    let name = "lose";
    rig.apply(&cluster_yaml(name, 3));
    rig.wait_ready(name, 3).await;
    rig.etcdctl(name).run(&["put", "kept", "yes"]).assert_success();
    let before = rig.member_ids(name);
    rig.cp
        .kubectl_run(&["delete", "pvc", "-n", NS, "data-lose-2", "--wait=false"])
        .assert_success();
    rig.cp.kubectl_run(&["delete", "pod", "-n", NS, "lose-2"]).assert_success();
    let replaced = wait_for(WAIT, || async {
        let ids = rig.member_ids(name);
        (ids.len() == 3 && ids.contains_key("lose-2") && ids.get("lose-2") != before.get("lose-2"))
            .then_some(ids)
    })
    .await
    .expect("lose-2 replaced by a new member");
    assert_eq!(replaced.get("lose-0"), before.get("lose-0"));
    rig.wait_ready(name, 3).await;
    let got = rig.etcdctl(name).run(&["get", "kept", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_killed_mid_scale_resumes_after_restart() {
    let mut rig = Rig::start().await;
    let name = "resume";
    rig.apply(&cluster_yaml(name, 3));
    rig.wait_ready(name, 3).await;
    rig.etcdctl(name).run(&["put", "k", "v"]).assert_success();
    rig.clusters()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale to 5");
    // Kill the operator once the first new member is in the member list.
    wait_for(WAIT, || async {
        let s = rig.clusters().get(name).await.ok()?.status?;
        (s.members.len() >= 4).then_some(())
    })
    .await
    .expect("scale-up started");
    rig.operator.take().expect("operator").kill();
    let restarted = Instant::now();
    rig.operator = Some(Operator::start(rig.cp.client(), "operator-b"));
    rig.wait_ready(name, 5).await;
    eprintln!(
        "restarted operator finished the scale in {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    let got = rig.etcdctl(name).run(&["get", "k", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_operator_replicas_one_leads_and_the_other_takes_over() {
    let mut rig = Rig::start().await;
    let b = Operator::start(rig.cp.client(), "operator-b");
    let a = rig.operator.take().expect("operator-a");
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(rig.cp.client(), NS);
    let holder = || async { leases.get("oxcd-operator").await.ok()?.spec?.holder_identity };
    let first = wait_for(WAIT, || async { holder().await.filter(|h| !h.is_empty()) })
        .await
        .expect("one replica holds the Lease");
    // The leader stops (as on SIGTERM: it releases the Lease); the standby takes over.
    let (leader, standby, next) = match first.as_str() {
        "operator-a" => (a, b, "operator-b"),
        _ => (b, a, "operator-a"),
    };
    leader.stop().await;
    assert_eq!(
        wait_for(WAIT, || async { holder().await.filter(|h| h == next) }).await.as_deref(),
        Some(next)
    );
    rig.operator = Some(standby);
    rig.apply(&cluster_yaml("handover", 1));
    rig.wait_ready("handover", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_rolls_a_version_change_one_member_at_a_time_leader_last() {
    let rig = Rig::start().await;
    let name = "upgrade";
    rig.apply(&cluster_yaml(name, 3));
    let before = rig.wait_ready(name, 3).await;
    rig.etcdctl(name).run(&["put", "kept", "yes"]).assert_success();
    let ids = rig.member_ids(name);
    let leader = before.leader.clone().expect("a leader");
    // The rig's kubelet runs every `oxcd:*` image as the built binary, so this exercises the
    // restart order, identity and data, not a change of binary.
    let t = Instant::now();
    rig.clusters()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"version": "0.1.1"}})),
        )
        .await
        .expect("new version");
    let pods: Api<Pod> = Api::namespaced(rig.cp.client(), NS);
    // Record the order in which pods come back on the new version.
    let mut order: Vec<String> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while order.len() < 3 && Instant::now() < deadline {
        for o in 0..3 {
            let pod = format!("{name}-{o}");
            let Ok(p) = pods.get(&pod).await else { continue };
            let v = p.labels().get("oxcd.dev/version").cloned();
            if v.as_deref() == Some("0.1.1") && !order.contains(&pod) {
                order.push(pod);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(order.len(), 3, "not every pod moved to the new version: {order:?}");
    let after = rig.wait_ready(name, 3).await;
    eprintln!("rolling upgrade of 3 members: {:.1} s, order {order:?}", t.elapsed().as_secs_f64());
    assert_eq!(order.last(), Some(&leader), "the leader restarts last: {order:?}");
    assert_eq!(after.current_version.as_deref(), Some("0.1.1"));
    assert_eq!(rig.member_ids(name), ids, "restarted members keep their identity");
    let got = rig.etcdctl(name).run(&["get", "kept", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the survivor recovers alone with every write, but growing back is not reliable yet: \
            a pod whose volume holds a removed learner's identity exits at once, so the \
            operator cannot see whom it runs as and re-adds instead of resetting it"]
async fn operator_recovers_from_quorum_loss_from_the_surviving_member() {
    let mut rig = Rig::start().await;
    let name = "quorum";
    let yaml = format!("{}  recovery:\n    memberLostAfterSeconds: 10\n", cluster_yaml(name, 3));
    rig.apply(&yaml);
    rig.wait_ready(name, 3).await;
    let ctl = rig.etcdctl(name);
    for i in 0..20 {
        ctl.run(&["put", &format!("q-{i:02}"), "v"]).assert_success();
    }
    let before = rig.member_ids(name);
    // Two of three members die for good: the kubelet stops (its pods keep running) and the
    // processes of pods 0 and 1 are killed, so nothing restarts them.
    let kubelet = rig.kubelet.take().expect("kubelet");
    let pids: Vec<i32> = ["quorum-0", "quorum-1"]
        .iter()
        .map(|p| kubelet.container_pid(NS, p, "oxcd").expect("a running member"))
        .collect();
    let stopped = kubelet.stop(StopMode::LeavePods);
    for pid in pids {
        // SAFETY: kill has no memory preconditions; the group is a member this test started.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let t = Instant::now();
    wait_for(WAIT, || async {
        let s = rig.clusters().get(name).await.ok()?.status?;
        s.recovery.is_some().then_some(())
    })
    .await
    .expect("the operator starts a recovery once the majority is gone past the policy");
    eprintln!("quorum loss → recovery started: {:.1} s", t.elapsed().as_secs_f64());
    // The kubelet comes back (it carries out the pod deletions the recovery asked for).
    rig.kubelet = Some(stopped.restart(rig.cp.client()).await.expect("kubelet restarts"));
    rig.wait_ready(name, 3).await;
    eprintln!("quorum loss → 3 healthy members again: {:.1} s", t.elapsed().as_secs_f64());
    let after = rig.member_ids(name);
    assert_eq!(after.get("quorum-2"), before.get("quorum-2"), "the survivor keeps its id");
    assert_ne!(after.get("quorum-0"), before.get("quorum-0"), "lost members come back new");
    let keys = rig.etcdctl(name).run(&["get", "q-", "--prefix", "--keys-only"]);
    keys.assert_success();
    assert_eq!(keys.stdout.lines().filter(|l| !l.is_empty()).count(), 20, "{}", keys.stdout);
    let events = rig.cp.kubectl_run(&["get", "events.events.k8s.io", "-n", NS]);
    assert!(
        events.stdout.contains("RecoveryStarted") && events.stdout.contains("Recovered"),
        "{}",
        events.stdout
    );
}
