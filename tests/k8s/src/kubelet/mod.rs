//! The process kubelet: a Node whose pods run as local processes.
//!
//! It registers a Node (Ready, with capacity and an InternalIP) and keeps its Lease, binds every
//! pending pod to itself (it is also the scheduler), binds PersistentVolumeClaims to directories
//! (and resizes them when their request grows), and runs each pod's containers as processes:
//! init containers in order, then the containers, restarted per `restartPolicy` with back-off,
//! probed (HTTP, TCP, exec), stopped with SIGTERM, the grace period, then SIGKILL. Each pod has its own loopback address in a `127.A.B.0/24`
//! owned by this instance, and pod and Service names resolve through a block of `/etc/hosts`
//! owned by it. It needs root (mount and UTS namespaces, `/etc/hosts`).
//!
//! Layout:
//! * [`addresses`] — the instance's address range and pod addresses.
//! * [`hosts`] — the instance's `/etc/hosts` block; [`names`] — what goes in it.
//! * [`node`] — the Node, its Lease, and binding pending pods.
//! * [`claims`] — PVCs as directories and the volumes bound to them.
//! * [`volumes`] — a pod's volumes and its ServiceAccount kubeconfig.
//! * [`images`] — image name → local binary; [`expand`] — `$(VAR)`; [`env`] — the environment.
//! * [`process`] — one container process; [`probe`] — probes; [`termination`] — termination
//!   messages.
//! * `pod` — the per-pod worker that drives containers and reports status.
//!
//! Not offered: `kubectl logs`/`exec`/`port-forward` (there is no kubelet API; read
//! [`Kubelet::log_path`] instead), ClusterIP virtual addresses (a Service name resolves to one
//! ready pod), resource limits, HTTPS/gRPC probes, `resourceFieldRef`, sidecar init containers,
//! refreshed Secret/ConfigMap volumes.

pub mod addresses;
pub mod claims;
pub mod env;
pub mod expand;
pub mod hosts;
pub mod images;
pub mod names;
pub mod node;
mod pod;
pub mod probe;
pub mod process;
pub mod termination;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use addresses::AddressRange;
pub use claims::Claims;
pub use hosts::{Entries, HostsBlock};
pub use images::{ImageRule, ImageTable};
pub use volumes::ApiServerAccess;

/// How often the kubelet looks at its pods, claims and Services.
const SYNC_PERIOD: Duration = Duration::from_millis(200);
/// How long the initial lists of the watched objects may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How a kubelet is configured.
#[derive(Clone, Debug)]
pub struct KubeletOptions {
    /// The Node's name; default `process-kubelet-<A>-<B>` after the address range.
    pub node_name: Option<String>,
    /// Where pods, claims and logs live (a directory the rig owns).
    pub root: PathBuf,
    /// Image → binary.
    pub images: ImageTable,
    /// How pods reach the API server (their `KUBECONFIG`); `None`: pods get none.
    pub api_server: Option<ApiServerAccess>,
    /// The hosts file to manage (`/etc/hosts`; tests of the kubelet itself may use another).
    pub hosts_file: PathBuf,
    /// The cluster DNS domain.
    pub cluster_domain: String,
    /// Whether this kubelet binds pending pods and claims (one per control plane should).
    pub schedule: bool,
    /// `127.A.B.0/24` to own; `None`: the first free one in `127.100-119.*`.
    pub address_range: Option<(u8, u8)>,
    /// First restart back-off after the immediate first restart, doubled per restart up to
    /// `restart_backoff_max` (kubelet: 10 s and 300 s; shorter here to keep tests short).
    pub restart_backoff: Duration,
    /// The back-off cap.
    pub restart_backoff_max: Duration,
    /// Node capacity.
    pub capacity: Vec<(String, String)>,
}

impl KubeletOptions {
    /// Defaults: oxcd's image table, `/etc/hosts`, `cluster.local`, scheduling on, back-off
    /// 1 s doubling to 30 s, a node of 8 CPUs, 32 GiB and 110 pods.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        KubeletOptions {
            node_name: None,
            root: root.into(),
            images: ImageTable::oxcd_defaults(),
            api_server: None,
            hosts_file: PathBuf::from("/etc/hosts"),
            cluster_domain: "cluster.local".into(),
            schedule: true,
            address_range: None,
            restart_backoff: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(30),
            capacity: vec![
                ("cpu".into(), "8".into()),
                ("memory".into(), "32Gi".into()),
                ("pods".into(), "110".into()),
                ("ephemeral-storage".into(), "100Gi".into()),
            ],
        }
    }
}

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No address range.
    #[error("taking a loopback address range: {0}")]
    Range(std::io::Error),
    /// A directory or the hosts file.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The API server refused the Node or its Lease.
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
    /// A watch did not list its objects in time.
    #[error("the initial list of {0} did not complete within {STARTUP_TIMEOUT:?}")]
    NotReady(&'static str),
    /// Not root.
    #[error("the process kubelet must run as root (mount/UTS namespaces and /etc/hosts)")]
    NotRoot,
}

/// What a container left behind for the kubelet (and a restarted kubelet) to find.
#[derive(Clone, Debug, Default)]
pub(crate) struct ContainerRecord {
    pub pid: Option<i32>,
    pub restart_count: i32,
    pub started_at: Option<k8s_openapi::jiff::Timestamp>,
    pub init_done: bool,
    pub log: Option<PathBuf>,
}

/// A pod this kubelet runs: enough to resolve its names, find its processes and re-adopt it.
#[derive(Clone, Debug)]
pub(crate) struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub names: Vec<String>,
    pub containers: BTreeMap<String, ContainerRecord>,
}

/// What outlives a kubelet's stop: the address range, the hosts block, the pods' records.
/// Dropping it kills every recorded process and removes the hosts block.
#[derive(Debug)]
pub(crate) struct Host {
    pub node: String,
    pub root: PathBuf,
    pub range: AddressRange,
    pub hosts: HostsBlock,
    pub state: Mutex<HostState>,
}

#[derive(Debug, Default)]
pub(crate) struct HostState {
    /// Set when the pods were killed: a worker that races the kill must not start processes or
    /// write names any more.
    pub closed: bool,
    /// uid → record.
    pub pods: BTreeMap<String, PodRecord>,
    pub service_entries: Entries,
    written: Option<Entries>,
}

impl Host {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the hosts block if the names changed.
    pub fn flush_names(&self) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let mut entries = Entries::new();
        for p in st.pods.values() {
            if !p.names.is_empty() {
                names::merge(&mut entries, [(p.ip, p.names.clone())].into());
            }
        }
        names::merge(&mut entries, st.service_entries.clone());
        if st.written.as_ref() == Some(&entries) {
            return;
        }
        match self.hosts.set(&entries) {
            Ok(()) => st.written = Some(entries),
            Err(e) => {
                tracing::warn!(path = %self.hosts.path().display(), error = %e, "writing the hosts block")
            }
        }
    }

    fn find(&self, namespace: &str, name: &str) -> Option<PodRecord> {
        self.lock().pods.values().find(|p| p.namespace == namespace && p.name == name).cloned()
    }

    /// Kills every recorded process group.
    fn kill_all(&self) {
        let pids: Vec<i32> = {
            let mut st = self.lock();
            st.closed = true;
            st.pods
                .values_mut()
                .flat_map(|p| p.containers.values_mut().filter_map(|c| c.pid.take()))
                .collect()
        };
        for pid in &pids {
            process::signal_group(*pid, libc::SIGKILL);
        }
        for pid in pids {
            process::kill_and_reap(pid);
            self.range.forget_process(pid);
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill_all();
        if let Err(e) = self.hosts.remove() {
            tracing::warn!(error = %e, "removing the hosts block");
        }
    }
}

/// State shared by the kubelet's tasks.
pub(crate) struct Ctx {
    pub client: Client,
    pub opts: KubeletOptions,
    pub host: Arc<Host>,
    pub claims: Claims,
    pub pvcs: Store<PersistentVolumeClaim>,
}

impl Ctx {
    /// The directory of claim `name` in `namespace`, once bound.
    pub fn claim_dir(&self, namespace: &str, name: &str) -> Option<PathBuf> {
        let pvc = self
            .pvcs
            .state()
            .into_iter()
            .find(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == name)?;
        self.claims.mount_dir(&pvc)
    }
}

/// How [`Kubelet::stop`] leaves the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// The node "crashes": every pod process is killed with SIGKILL.
    KillPods,
    /// Only the kubelet stops: pod processes keep running, to be re-adopted by
    /// [`StoppedKubelet::restart`].
    LeavePods,
}

/// A running process kubelet. Dropping it kills every pod process and removes its hosts block;
/// [`Kubelet::shutdown`] also deletes the Node.
pub struct Kubelet {
    ctx: Arc<Ctx>,
    tasks: Vec<JoinHandle<()>>,
    /// Set by [`Kubelet::stop`]: the host state lives on in the [`StoppedKubelet`].
    stopped: bool,
}

/// A stopped kubelet: its address range, hosts block, directories and (with
/// [`StopMode::LeavePods`]) its pods' processes, waiting for [`StoppedKubelet::restart`].
pub struct StoppedKubelet {
    host: Arc<Host>,
    opts: KubeletOptions,
}

impl Kubelet {
    /// Registers the Node and starts running pods.
    pub async fn start(client: Client, opts: KubeletOptions) -> Result<Kubelet, Error> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::NotRoot);
        }
        let range = AddressRange::acquire(opts.address_range).map_err(Error::Range)?;
        let o = range.node_ip().octets();
        let node =
            opts.node_name.clone().unwrap_or_else(|| format!("process-kubelet-{}-{}", o[1], o[2]));
        let root = opts.root.join(&node);
        std::fs::create_dir_all(&root)
            .map_err(|source| Error::Io { path: root.clone(), source })?;
        let hosts = HostsBlock::new(&opts.hosts_file, range.cidr());
        // Blocks (ours included) left by processes that died owning their ranges.
        let stale = |source| Error::Io { path: opts.hosts_file.clone(), source };
        hosts.remove().map_err(stale)?;
        AddressRange::reclaim_stale(&opts.hosts_file).map_err(stale)?;
        let host =
            Arc::new(Host { node, root, range, hosts, state: Mutex::new(HostState::default()) });
        Self::run(client, opts, host).await
    }

    async fn run(client: Client, opts: KubeletOptions, host: Arc<Host>) -> Result<Kubelet, Error> {
        let spec = node::NodeSpec {
            name: host.node.clone(),
            ip: host.range.node_ip().to_string(),
            capacity: opts.capacity.clone(),
        };
        let reg = |source| Error::Register { node: host.node.clone(), source };
        node::register(&client, &spec).await.map_err(reg)?;
        node::renew_lease(&client, &host.node).await.map_err(reg)?;

        let mut tasks = Vec::new();
        let (pods, t) = watch_all::<Pod>(&client);
        tasks.push(t);
        let (pvcs, t) = watch_all::<PersistentVolumeClaim>(&client);
        tasks.push(t);
        let (services, t) = watch_all::<Service>(&client);
        tasks.push(t);
        let listed = async {
            listed(&pods, "pods").await?;
            listed(&pvcs, "persistentvolumeclaims").await?;
            listed(&services, "services").await
        };
        if let Err(e) = listed.await {
            for t in &tasks {
                t.abort();
            }
            return Err(e);
        }
        let claims = Claims::new(host.root.join("claims"));
        let ctx = Arc::new(Ctx { client: client.clone(), opts, host, claims, pvcs });
        tasks.push(tokio::spawn(node::heartbeat(client, spec)));
        tasks.push(tokio::spawn(sync_loop(ctx.clone(), pods, services)));
        Ok(Kubelet { ctx, tasks, stopped: false })
    }

    /// The Node's name.
    pub fn node_name(&self) -> &str {
        &self.ctx.host.node
    }

    /// The Node's InternalIP.
    pub fn node_ip(&self) -> Ipv4Addr {
        self.ctx.host.range.node_ip()
    }

    /// The directory holding this kubelet's pods, claims and logs.
    pub fn root(&self) -> &Path {
        &self.ctx.host.root
    }

    /// The address of a pod this kubelet runs.
    pub fn pod_ip(&self, namespace: &str, pod: &str) -> Option<Ipv4Addr> {
        self.ctx.host.find(namespace, pod).map(|p| p.ip)
    }

    /// The pid (and process group) of a running container.
    pub fn container_pid(&self, namespace: &str, pod: &str, container: &str) -> Option<i32> {
        self.ctx.host.find(namespace, pod)?.containers.get(container)?.pid
    }

    /// The current log file of a container (`<root>/logs/<ns>_<pod>_<uid>/<container>/<n>.log`,
    /// `n` = its restart count, like `/var/log/pods`).
    pub fn log_path(&self, namespace: &str, pod: &str, container: &str) -> Option<PathBuf> {
        self.ctx.host.find(namespace, pod)?.containers.get(container)?.log.clone()
    }

    /// Fault: SIGKILL a container's process group (the kubelet restarts it per restartPolicy).
    pub fn kill_container(&self, namespace: &str, pod: &str, container: &str) -> bool {
        match self.container_pid(namespace, pod, container) {
            Some(pid) => {
                process::signal_group(pid, libc::SIGKILL);
                true
            }
            None => false,
        }
    }

    /// The directory of a bound claim.
    pub fn claim_dir(&self, namespace: &str, claim: &str) -> Option<PathBuf> {
        self.ctx.claim_dir(namespace, claim)
    }

    /// Fault: the claim's data is lost (its directory is replaced by an empty one; a running
    /// pod keeps a mount of the deleted directory until it restarts).
    pub fn lose_claim(&self, namespace: &str, claim: &str) -> std::io::Result<()> {
        let pvc = self
            .ctx
            .pvcs
            .state()
            .into_iter()
            .find(|c| c.namespace().as_deref() == Some(namespace) && c.name_any() == claim)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("pvc {namespace}/{claim}"),
                )
            })?;
        self.ctx.claims.lose(&pvc)
    }

    /// Fault: stops the kubelet (no more heartbeats, status or restarts). With
    /// [`StopMode::KillPods`] its processes die too; with [`StopMode::LeavePods`] they keep running.
    pub fn stop(mut self, mode: StopMode) -> StoppedKubelet {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if mode == StopMode::KillPods {
            self.ctx.host.kill_all();
        }
        self.stopped = true;
        StoppedKubelet { host: self.ctx.host.clone(), opts: self.ctx.opts.clone() }
    }

    /// Stops everything: pod processes, the hosts block, and deletes the Node and its Lease.
    pub async fn shutdown(self) {
        let client = self.ctx.client.clone();
        let node = self.ctx.host.node.clone();
        drop(self);
        node::deregister(&client, &node).await;
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if self.stopped {
            return;
        }
        // Aborted tasks release the shared Host only when the runtime drops them: kill and
        // unpublish now rather than then.
        self.ctx.host.kill_all();
        if let Err(e) = self.ctx.host.hosts.remove() {
            tracing::warn!(error = %e, "removing the hosts block");
        }
    }
}

impl StoppedKubelet {
    /// Starts the kubelet again on the same node, range and directories; pods it left running
    /// are re-adopted, pods deleted meanwhile are cleaned up.
    pub async fn restart(self, client: Client) -> Result<Kubelet, Error> {
        self.host.lock().closed = false;
        Kubelet::run(client, self.opts, self.host).await
    }
}

/// A reflector over every object of kind `K`, driven by its own task.
fn watch_all<K>(client: &Client) -> (Store<K>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    let task = tokio::spawn(async move {
        stream.for_each(|_| async {}).await;
    });
    (store, task)
}

/// Waits until `store` holds the initial list of its objects.
async fn listed<K>(store: &Store<K>, what: &'static str) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    match tokio::time::timeout(STARTUP_TIMEOUT, store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Error::NotReady(what)),
    }
}

/// A pod worker's handle; dropping it (the control loop was aborted) aborts the worker.
struct WorkerHandle {
    tx: watch::Sender<Option<Arc<Pod>>>,
    task: JoinHandle<()>,
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The kubelet's control loop: schedule, bind claims, start and feed pod workers, publish names.
async fn sync_loop(ctx: Arc<Ctx>, pods: Store<Pod>, services: Store<Service>) {
    let mut workers: BTreeMap<String, WorkerHandle> = BTreeMap::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut attempts: BTreeMap<String, Instant> = BTreeMap::new();
    let mut service_names = names::ServiceNames::default();
    let mut last_collect = Instant::now();
    // Pods recorded before a restart, to be re-adopted (or cleaned up if gone).
    let adopted: BTreeSet<String> = ctx.host.lock().pods.keys().cloned().collect();
    let mut first = true;
    loop {
        let now = Instant::now();
        let all = pods.state();
        attempts.retain(|_, t| now.duration_since(*t) < Duration::from_secs(2));
        if ctx.opts.schedule {
            for p in all.iter().filter(|p| node::wants_binding(p)) {
                let uid = p.uid().unwrap_or_default();
                if attempts.contains_key(&uid) {
                    continue;
                }
                attempts.insert(uid, now);
                if let Err(e) = node::bind(&ctx.client, p, &ctx.host.node).await {
                    tracing::debug!(pod = %p.name_any(), error = %e, "binding");
                }
            }
            for c in ctx.pvcs.state().iter().filter(|c| Claims::needs_binding(c)) {
                let uid = c.uid().unwrap_or_default();
                if attempts.contains_key(&uid) {
                    continue;
                }
                attempts.insert(uid, now);
                if let Err(e) = ctx.claims.bind(&ctx.client, &ctx.host.node, c).await {
                    tracing::warn!(pvc = %c.name_any(), error = %e, "binding the claim");
                }
            }
            for c in ctx.pvcs.state() {
                let Some(size) = Claims::needs_resize(&c) else { continue };
                let key = format!("resize-{}", c.uid().unwrap_or_default());
                if attempts.contains_key(&key) {
                    continue;
                }
                attempts.insert(key, now);
                if let Err(e) = ctx.claims.resize(&ctx.client, &c, &size).await {
                    tracing::warn!(pvc = %c.name_any(), error = %e, "resizing the claim");
                }
            }
            if now.duration_since(last_collect) > Duration::from_secs(2) {
                last_collect = now;
                let live: BTreeSet<String> =
                    ctx.pvcs.state().iter().filter_map(|c| c.uid()).collect();
                ctx.claims.collect(&ctx.client, &live).await;
            }
        }

        let mine: BTreeMap<String, Arc<Pod>> = all
            .into_iter()
            .filter(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(ctx.host.node.as_str())
            })
            .filter_map(|p| p.uid().map(|u| (u, p)))
            .collect();
        for (uid, pod) in &mine {
            if finished.contains(uid) {
                continue;
            }
            match workers.get(uid) {
                Some(w) => {
                    w.tx.send_if_modified(|cur| {
                        let changed = cur.as_ref().map(|c| c.resource_version())
                            != Some(pod.resource_version());
                        if changed {
                            *cur = Some(pod.clone());
                        }
                        changed
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(Some(pod.clone()));
                    let task = tokio::spawn(pod::run(ctx.clone(), uid.clone(), rx));
                    workers.insert(uid.clone(), WorkerHandle { tx, task });
                }
            }
        }
        if first {
            // Re-adopted pods that were deleted while the kubelet was down: stop and clean up.
            for uid in adopted.iter().filter(|u| !mine.contains_key(*u)) {
                let (tx, rx) = watch::channel(None);
                let task = tokio::spawn(pod::run(ctx.clone(), uid.clone(), rx));
                workers.insert(uid.clone(), WorkerHandle { tx, task });
            }
            first = false;
        }
        for (uid, w) in &workers {
            if !mine.contains_key(uid) {
                w.tx.send_if_modified(|cur| cur.take().is_some());
            }
        }
        let done: Vec<String> =
            workers.iter().filter(|(_, w)| w.task.is_finished()).map(|(u, _)| u.clone()).collect();
        for uid in done {
            workers.remove(&uid);
            finished.insert(uid);
        }
        finished.retain(|u| mine.contains_key(u));

        let entries =
            service_names.entries(&services.state(), &pods.state(), &ctx.opts.cluster_domain);
        ctx.host.lock().service_entries = entries;
        ctx.host.flush_names();
        tokio::time::sleep(SYNC_PERIOD).await;
    }
}
