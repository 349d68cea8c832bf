//! The process kubelet against the real control plane (kube-apiserver on oxcd and
//! kube-controller-manager): pods really run as processes on their own loopback addresses, are
//! found by their DNS names, restart, become Ready through their probes, stop with SIGTERM, and
//! a StatefulSet of three oxcd members forms a real cluster reachable through its Service name.
//!
//! Needs root (namespaces, `/etc/hosts`) and the binaries of `scripts/k8s-bins.sh`.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use oxcd_e2e::{CtlOutput, CtlVersion, Etcdctl};
use oxcd_k8s_rig::control_plane::{ControlPlane, Options, StorageKind};
use oxcd_k8s_rig::kubelet::{ApiServerAccess, Kubelet, KubeletOptions, StopMode};
use oxcd_k8s_rig::poll::poll;
use serde_json::json;

/// The longest any single condition below may take to hold.
const WAIT: Duration = Duration::from_secs(90);

/// A control plane on oxcd with a process kubelet, and a namespace for the test.
struct Rig {
    kubelet: Option<Kubelet>,
    cp: ControlPlane,
    client: Client,
    ns: String,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(ns: &str) -> Rig {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let cp = ControlPlane::start(Options::new(StorageKind::Oxcd)).await.expect("control plane");
        let client = cp.client();
        let dir = tempfile::Builder::new().prefix("oxcd-kubelet-test-").tempdir().unwrap();
        let mut opts = KubeletOptions::new(dir.path());
        opts.api_server = Some(ApiServerAccess::from_kubeconfig(cp.kubeconfig()).unwrap());
        let kubelet = Kubelet::start(client.clone(), opts).await.expect("kubelet");
        let nsobj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &nsobj).await.unwrap();
        // The namespace's default ServiceAccount (made by kube-controller-manager) is needed
        // before pods can be created.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), ns);
        wait_for("the default ServiceAccount", || async {
            sa.get_opt("default").await.ok().flatten().is_some()
        })
        .await;
        Rig { kubelet: Some(kubelet), cp, client, ns: ns.into(), _dir: dir }
    }

    fn kubelet(&self) -> &Kubelet {
        self.kubelet.as_ref().expect("kubelet running")
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create<K>(&self, obj: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
        let obj: K = serde_json::from_value(obj).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap()
    }

    async fn pod(&self, name: &str) -> Option<Pod> {
        self.pods().get_opt(name).await.ok().flatten()
    }

    /// The container's log so far (the rig has no `kubectl logs`).
    fn log(&self, pod: &str, container: &str) -> String {
        self.kubelet()
            .log_path(&self.ns, pod, container)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    fn context(&self) -> String {
        format!("--- kube-apiserver log tail ---\n{}", self.cp.apiserver_log_tail(20))
    }
}

/// Polls `cond` every 200 ms until it holds; panics after [`WAIT`].
async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let held = poll(WAIT, Duration::from_millis(200), || {
        let next = cond();
        async move { next.await.then_some(()) }
    });
    assert!(held.await.is_some(), "timed out after {WAIT:?} waiting for {what}");
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn restart_count(p: &Pod, container: &str) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .map(|c| c.restart_count)
        .unwrap_or(-1)
}

/// etcdctl 3.5 against `endpoint`, off the async runtime.
async fn etcdctl(endpoint: String, args: &[&str]) -> CtlOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Etcdctl::new(CtlVersion::V35, [endpoint]).timeout(Duration::from_secs(10)).run(&refs)
    })
    .await
    .unwrap()
}

/// The container spec of one oxcd member listening on its pod address.
fn oxcd_container(initial_cluster: &str, advertise_host: &str) -> serde_json::Value {
    json!({
        "name": "oxcd",
        "image": "ghcr.io/oxcd/oxcd:dev",
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "args": [
            "--name=$(POD_NAME)",
            "--data-dir=/var/lib/oxcd/data",
            "--listen-client-urls=http://$(POD_IP):2379",
            format!("--advertise-client-urls=http://{advertise_host}:2379"),
            "--listen-peer-urls=http://$(POD_IP):2380",
            format!("--initial-advertise-peer-urls=http://{advertise_host}:2380"),
            format!("--initial-cluster={initial_cluster}"),
            "--initial-cluster-state=new",
        ],
        "ports": [{"name": "client", "containerPort": 2379}, {"name": "peer", "containerPort": 2380}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "client"}, "periodSeconds": 1, "failureThreshold": 2},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/oxcd"}],
    })
}

/// One oxcd pod: it runs, is reachable by its DNS name, becomes Ready through its readiness
/// probe, is restarted (restartCount 1, data kept in its emptyDir) after its process is killed,
/// is re-adopted by a restarted kubelet, restarted after a node crash, and deleted with SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oxcd_pod_runs_restarts_and_stops() {
    let t0 = Instant::now();
    let mut rig = Rig::start("kubelet-pod").await;
    let ns = rig.ns.clone();
    let host = format!("solo-0.solo.{ns}.svc");
    let _: Service = rig
        .create(json!({"metadata": {"name": "solo"}, "spec": {"clusterIP": "None", "selector": {"app": "solo"}, "ports": [{"port": 2379}]}}))
        .await;
    let mut container = oxcd_container(&format!("solo-0=http://{host}:2380"), &host);
    container["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "GREETING", "value": "pod $(POD_NAME) at $(POD_IP)"}));
    let _: Pod = rig
        .create(json!({
            "metadata": {"name": "solo-0", "labels": {"app": "solo"}},
            "spec": {"hostname": "solo-0", "subdomain": "solo", "containers": [container],
                     "volumes": [{"name": "data", "emptyDir": {}}]},
        }))
        .await;
    wait_for("solo-0 Ready", || async { rig.pod("solo-0").await.is_some_and(|p| is_ready(&p)) })
        .await;
    let pod = rig.pod("solo-0").await.unwrap();
    let ip = rig.kubelet().pod_ip(&ns, "solo-0").expect("pod address");
    let status = pod.status.clone().unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some(ip.to_string().as_str()));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(rig.kubelet().node_name()));
    assert_eq!(restart_count(&pod, "oxcd"), 0);
    eprintln!("solo-0 Ready at {ip} after {:?}", t0.elapsed());

    // The real process answers on its pod address, found through its DNS name.
    for name in [host.clone(), format!("{host}.cluster.local")] {
        let url = format!("http://{name}:2379");
        etcdctl(url.clone(), &["put", "k", "v1"]).await.assert_success();
        let got = etcdctl(url, &["get", "k", "--print-value-only"]).await;
        assert_eq!(got.assert_success().stdout.trim(), "v1");
    }

    // Killed: restarted once, Ready again, data kept (the emptyDir outlives the container).
    let pid = rig.kubelet().container_pid(&ns, "solo-0", "oxcd").expect("pid");
    assert!(rig.kubelet().kill_container(&ns, "solo-0", "oxcd"));
    wait_for("restartCount 1 and Ready", || async {
        rig.pod("solo-0").await.is_some_and(|p| restart_count(&p, "oxcd") == 1 && is_ready(&p))
    })
    .await;
    let pod = rig.pod("solo-0").await.unwrap();
    let cs = &pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    let last =
        cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).expect("lastState.terminated");
    assert_eq!(last.exit_code, 137, "SIGKILL is exit code 137");
    assert_ne!(rig.kubelet().container_pid(&ns, "solo-0", "oxcd"), Some(pid));
    let got = etcdctl(format!("http://{host}:2379"), &["get", "k", "--print-value-only"]).await;
    assert_eq!(got.assert_success().stdout.trim(), "v1");

    // The kubelet stops and comes back: the process it left running is re-adopted.
    let pid = rig.kubelet().container_pid(&ns, "solo-0", "oxcd").expect("pid");
    let stopped = rig.kubelet.take().unwrap().stop(StopMode::LeavePods);
    etcdctl(format!("http://{host}:2379"), &["put", "k", "v2"]).await.assert_success();
    rig.kubelet = Some(stopped.restart(rig.client.clone()).await.expect("kubelet restart"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.kubelet().container_pid(&ns, "solo-0", "oxcd"),
        Some(pid),
        "re-adopted, not restarted"
    );
    wait_for("Ready after the kubelet restart", || async {
        rig.pod("solo-0").await.is_some_and(|p| is_ready(&p))
    })
    .await;
    assert_eq!(restart_count(&rig.pod("solo-0").await.unwrap(), "oxcd"), 1);

    // The node "crashes" (the kubelet and its processes die) and comes back: the container is
    // started again, counted as a restart, on the same address.
    let stopped = rig.kubelet.take().unwrap().stop(StopMode::KillPods);
    assert!(!oxcd_e2e_alive(pid), "KillPods kills the processes");
    rig.kubelet = Some(stopped.restart(rig.client.clone()).await.expect("kubelet restart"));
    wait_for("restartCount 2 and Ready after the node crash", || async {
        rig.pod("solo-0").await.is_some_and(|p| restart_count(&p, "oxcd") == 2 && is_ready(&p))
    })
    .await;
    assert_eq!(rig.kubelet().pod_ip(&ns, "solo-0"), Some(ip));
    let got = etcdctl(format!("http://{host}:2379"), &["get", "k", "--print-value-only"]).await;
    assert_eq!(got.assert_success().stdout.trim(), "v2");
    let pid = rig.kubelet().container_pid(&ns, "solo-0", "oxcd").expect("pid");

    // Deleted: SIGTERM, the process exits by itself well within the grace period, pod removed.
    let t_del = Instant::now();
    rig.pods()
        .delete("solo-0", &DeleteParams { grace_period_seconds: Some(30), ..Default::default() })
        .await
        .unwrap();
    wait_for("solo-0 removed", || async { rig.pod("solo-0").await.is_none() }).await;
    assert!(
        t_del.elapsed() < Duration::from_secs(25),
        "stopped by SIGTERM, not by the grace period's SIGKILL"
    );
    assert!(!oxcd_e2e_alive(pid), "process {pid} gone");
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(!hosts.contains(&host), "names of a deleted pod are unpublished:\n{hosts}");
    let _ = rig.context();
    eprintln!("oxcd_pod_runs_restarts_and_stops: {:?}", t0.elapsed());
}

/// Whether `host` resolves (through `/etc/hosts`, as for any process).
fn resolves(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    (host, 2379).to_socket_addrs().is_ok_and(|mut a| a.next().is_some())
}

fn oxcd_e2e_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

/// A shell pod: env expansion and downward API, a ConfigMap and a Secret as files, exec
/// readiness, a liveness probe restarting its container, SIGTERM on deletion (trapped), SIGKILL after the grace period when ignored, an
/// init container run first, and a restartPolicy Never pod that succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_pods_env_volumes_and_termination() {
    let t0 = Instant::now();
    let rig = Rig::start("kubelet-shell").await;
    let ns = rig.ns.clone();
    let _: k8s_openapi::api::core::v1::ConfigMap = rig
        .create(
            json!({"metadata": {"name": "cfg"}, "data": {"app.conf": "mode=test\n", "other": "x"}}),
        )
        .await;
    let _: k8s_openapi::api::core::v1::Secret = rig
        .create(json!({"metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}}))
        .await;
    let script = r#"
        echo "env: $GREETING"; cat /etc/app/app.conf; cat /etc/sec/pw; echo;
        cat /podinfo/name; echo; cat /init/done;
        test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token-ok;
        test -s "$KUBECONFIG" && echo kubeconfig-ok;
        trap 'echo got SIGTERM; exit 0' TERM; while true; do sleep 0.1; done"#;
    let _: Pod = rig
        .create(json!({
            "metadata": {"name": "shell", "labels": {"app": "shell"}},
            "spec": {
                "terminationGracePeriodSeconds": 30,
                "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "echo first > /init/done"],
                                    "volumeMounts": [{"name": "scratch", "mountPath": "/init"}]}],
                "containers": [{
                    "name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script],
                    // Requests make the pod Burstable: its status must still be reported.
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "GREETING", "value": "hello $(POD_NAME) $$(POD_NAME)"},
                    ],
                    "readinessProbe": {"exec": {"command": ["sh", "-c", "test -f /init/done"]}, "periodSeconds": 1},
                    "volumeMounts": [
                        {"name": "cfg", "mountPath": "/etc/app"},
                        {"name": "sec", "mountPath": "/etc/sec", "readOnly": true},
                        {"name": "podinfo", "mountPath": "/podinfo"},
                        {"name": "scratch", "mountPath": "/init"},
                    ],
                }],
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "app.conf"}]}},
                    {"name": "sec", "secret": {"secretName": "sec", "items": [{"key": "password", "path": "pw"}]}},
                    {"name": "podinfo", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"name": "scratch", "emptyDir": {}},
                ],
            },
        }))
        .await;
    wait_for("shell Ready", || async { rig.pod("shell").await.is_some_and(|p| is_ready(&p)) })
        .await;
    wait_for("shell's output", || async { rig.log("shell", "main").contains("kubeconfig-ok") })
        .await;
    assert_eq!(
        rig.log("shell", "main"),
        "env: hello shell $(POD_NAME)\nmode=test\ns3cret\nshell\nfirst\ntoken-ok\nkubeconfig-ok\n"
    );
    assert_eq!(
        rig.pod("shell").await.unwrap().status.unwrap().init_container_statuses.unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );

    // A failing liveness probe restarts the container (SIGTERM; it exits with 143).
    let live: Pod = rig
        .create(json!({
            "metadata": {"name": "live"},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [{
                "name": "main", "image": "busybox", "command": ["sh", "-c", "while true; do sleep 0.1; done"],
                "livenessProbe": {"exec": {"command": ["sh", "-c", "test ! -e /data/die"]}, "periodSeconds": 1, "failureThreshold": 1},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "emptyDir": {}}]},
        }))
        .await;
    wait_for("live Ready", || async { rig.pod("live").await.is_some_and(|p| is_ready(&p)) }).await;
    let uid = live.metadata.uid.clone().unwrap();
    let die = rig.kubelet().root().join("pods").join(&uid).join("volumes/data/die");
    std::fs::write(&die, "").unwrap();
    wait_for("live restarted by its liveness probe", || async {
        rig.pod("live").await.is_some_and(|p| restart_count(&p, "main") >= 1)
    })
    .await;
    std::fs::remove_file(&die).unwrap();
    let p = rig.pod("live").await.unwrap();
    let cs = &p.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()).expect("lastState");
    assert_eq!(last.exit_code, 143, "stopped by SIGTERM");
    wait_for("live Ready again", || async { rig.pod("live").await.is_some_and(|p| is_ready(&p)) })
        .await;

    // An ignoring process is killed after its grace period.
    let _: Pod = rig
        .create(json!({
            "metadata": {"name": "stubborn"},
            "spec": {"terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}]},
        }))
        .await;
    wait_for("stubborn Ready", || async {
        rig.pod("stubborn").await.is_some_and(|p| is_ready(&p))
    })
    .await;

    let t_del = Instant::now();
    rig.pods().delete("shell", &DeleteParams::default()).await.unwrap();
    rig.pods().delete("stubborn", &DeleteParams::default()).await.unwrap();
    wait_for("shell removed", || async { rig.pod("shell").await.is_none() }).await;
    assert!(
        t_del.elapsed() < Duration::from_secs(20),
        "the trapped SIGTERM ended shell, not SIGKILL after 30 s"
    );
    let logs = rig.kubelet().root().join("logs");
    let shell_log = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&format!("{ns}_shell_")))
        .unwrap();
    let text = std::fs::read_to_string(shell_log.path().join("main/0.log")).unwrap();
    assert!(text.ends_with("got SIGTERM\n"), "{text}");
    wait_for("stubborn removed", || async { rig.pod("stubborn").await.is_none() }).await;
    assert!(t_del.elapsed() >= Duration::from_secs(2), "stubborn waited out its grace period");

    // restartPolicy Never: runs once, Succeeded; what it wrote to /dev/termination-log (the
    // API server's default terminationMessagePath) is its terminated state's message.
    let _: Pod = rig
        .create(json!({"metadata": {"name": "once"}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox",
                            "command": ["sh", "-c", "echo '{\"result\": 42}' > /dev/termination-log"]}]}}))
        .await;
    wait_for("once Succeeded", || async {
        rig.pod("once").await.and_then(|p| p.status).and_then(|s| s.phase).as_deref()
            == Some("Succeeded")
    })
    .await;
    let terminated = |p: Pod| {
        let cs = p.status?.container_statuses?.into_iter().next()?;
        cs.state?.terminated
    };
    let once = terminated(rig.pod("once").await.unwrap()).expect("terminated");
    assert_eq!(once.message.as_deref(), Some("{\"result\": 42}\n"));
    // A failure that wrote nothing there, with FallbackToLogsOnError: its log's tail.
    let _: Pod = rig
        .create(json!({"metadata": {"name": "fails"}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "terminationMessagePolicy": "FallbackToLogsOnError",
                            "command": ["sh", "-c", "echo starting; echo 'cannot go on' >&2; exit 3"]}]}}))
        .await;
    wait_for("fails Failed", || async {
        rig.pod("fails").await.and_then(|p| p.status).and_then(|s| s.phase).as_deref()
            == Some("Failed")
    })
    .await;
    let fails = terminated(rig.pod("fails").await.unwrap()).expect("terminated");
    assert_eq!((fails.exit_code, fails.message.as_deref()), (3, Some("starting\ncannot go on")));
    eprintln!("shell_pods_env_volumes_and_termination: {:?}", t0.elapsed());
}

/// A StatefulSet of three oxcd members (`--initial-cluster` with the pods' DNS names, each
/// listening on its pod address) comes up Ready; etcdctl through the client Service name writes
/// and reads; a member's claim directory survives its pod's deletion and is reused by the
/// recreated pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_of_three_oxcd_members() {
    let t0 = Instant::now();
    let rig = Rig::start("kubelet-sts").await;
    let ns = rig.ns.clone();
    let peer = |i: usize| format!("oxcd-{i}=http://oxcd-{i}.oxcd.{ns}.svc:2380");
    let initial = (0..3).map(peer).collect::<Vec<_>>().join(",");
    let _: Service = rig
        .create(json!({"metadata": {"name": "oxcd"}, "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
            "selector": {"app": "oxcd"}, "ports": [{"name": "peer", "port": 2380}]}}))
        .await;
    let _: Service = rig
        .create(json!({"metadata": {"name": "oxcd-client"}, "spec": {"selector": {"app": "oxcd"},
            "ports": [{"name": "client", "port": 2379}]}}))
        .await;
    let container = oxcd_container(&initial, &format!("$(POD_NAME).oxcd.{ns}.svc"));
    let _: StatefulSet = rig
        .create(json!({
            "metadata": {"name": "oxcd"},
            "spec": {
                "serviceName": "oxcd", "replicas": 3, "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": "oxcd"}},
                "template": {"metadata": {"labels": {"app": "oxcd"}}, "spec": {"containers": [container]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            },
        }))
        .await;
    let sts: Api<StatefulSet> = Api::namespaced(rig.client.clone(), &ns);
    wait_for("3 ready replicas", || async {
        sts.get("oxcd").await.ok().and_then(|s| s.status).and_then(|s| s.ready_replicas) == Some(3)
    })
    .await;
    eprintln!("StatefulSet Ready after {:?}", t0.elapsed());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(rig.client.clone(), &ns);
    for i in 0..3 {
        let pvc = pvcs.get(&format!("data-oxcd-{i}")).await.unwrap();
        assert_eq!(pvc.status.unwrap().phase.as_deref(), Some("Bound"));
    }
    // Like DNS, the Service name follows its EndpointSlice, which lags the pods' readiness.
    let client_host = format!("oxcd-client.{ns}.svc");
    wait_for("the client Service name", || async { resolves(&client_host) }).await;
    let client_url = format!("http://{client_host}:2379");
    etcdctl(client_url.clone(), &["put", "greeting", "hello"]).await.assert_success();
    let got = etcdctl(client_url.clone(), &["get", "greeting", "--print-value-only"]).await;
    assert_eq!(got.assert_success().stdout.trim(), "hello");
    let members = etcdctl(client_url.clone(), &["member", "list"]).await;
    assert_eq!(members.assert_success().stdout.lines().count(), 3, "{members}");
    let out = rig.cp.kubectl_run(&["get", "pvc", "-n", &ns]);
    assert_eq!(out.stdout.matches("Bound").count(), 3, "{out}");

    // The claim directory outlives the pod and is reused by its replacement.
    let dir: PathBuf = rig.kubelet().claim_dir(&ns, "data-oxcd-1").expect("claim dir");
    std::fs::write(dir.join("marker"), "kept").unwrap();
    let old_uid = rig.pod("oxcd-1").await.unwrap().metadata.uid;
    rig.pods().delete("oxcd-1", &DeleteParams::default()).await.unwrap();
    wait_for("oxcd-1 recreated and Ready", || async {
        rig.pod("oxcd-1").await.is_some_and(|p| p.metadata.uid != old_uid && is_ready(&p))
    })
    .await;
    assert_eq!(rig.kubelet().claim_dir(&ns, "data-oxcd-1").as_deref(), Some(dir.as_path()));
    assert_eq!(std::fs::read_to_string(dir.join("marker")).unwrap(), "kept");
    assert!(dir.join("data").is_dir(), "the member's data dir is on the claim");
    let one = format!("http://oxcd-1.oxcd.{ns}.svc:2379");
    let got = etcdctl(one, &["get", "greeting", "--print-value-only", "--consistency=s"]).await;
    assert_eq!(got.assert_success().stdout.trim(), "hello", "the member kept its data");
    eprintln!("statefulset_of_three_oxcd_members: {:?}", t0.elapsed());
}
