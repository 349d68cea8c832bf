//! One pod's worker: sets up its address, names and volumes, runs its init containers in order
//! and then its containers, restarts them per `restartPolicy` with back-off, runs their probes,
//! reports the pod's status, and on deletion stops them (SIGTERM, grace period, SIGKILL),
//! cleans up and removes the pod from the API.
//!
//! The worker is level-driven: every [`TICK`] (or when the Pod object changes) it looks at the
//! latest Pod and its processes and takes the steps due. Everything a restarted kubelet needs to
//! re-adopt the pod is kept in its [`PodRecord`] as it changes.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::env::{container_env, PodFacts, Sources};
use super::expand::expand_with;
use super::probe::{self, Tracker};
use super::process::{self, Exit, Launch, Mount};
use super::termination;
use super::volumes::{self, PodVolumes, VolumeContext};
use super::{names, ContainerRecord, Ctx, PodRecord};

/// How often a worker looks at its pod when nothing changes.
const TICK: Duration = Duration::from_millis(100);
/// How long a failed volume setup or container start waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// The grace period when a pod vanished from the API without a graceful deletion.
const VANISHED_GRACE: Duration = Duration::from_secs(2);

/// A container's state as Kubernetes reports it.
#[derive(Clone, Debug, PartialEq)]
enum State {
    Waiting { reason: String, message: String },
    Running { started_at: Timestamp },
    Terminated(Terminated),
}

#[derive(Clone, Debug, PartialEq)]
struct Terminated {
    exit: Exit,
    reason: String,
    started_at: Option<Timestamp>,
    finished_at: Timestamp,
    pid: i32,
    /// What the container wrote to its `terminationMessagePath` (or, with
    /// `FallbackToLogsOnError`, the tail of its log after a failure).
    message: String,
}

/// One container's runtime state.
struct Ctr {
    spec: Container,
    init: bool,
    state: State,
    last: Option<Terminated>,
    pid: Option<i32>,
    restart_count: i32,
    /// Has run before (a new start counts as a restart).
    ran: bool,
    /// Will (re)start: not finished for good.
    want_start: bool,
    not_before: Instant,
    /// Init container finished successfully.
    done: bool,
    ready: bool,
    started: bool,
    startup: Option<Tracker>,
    liveness: Option<Tracker>,
    readiness: Option<Tracker>,
    kill_deadline: Option<Instant>,
    launch: Option<Launch>,
    log: Option<PathBuf>,
}

impl Ctr {
    fn new(spec: Container, init: bool) -> Self {
        Ctr {
            spec,
            init,
            state: State::Waiting {
                reason: if init { "PodInitializing" } else { "ContainerCreating" }.into(),
                message: String::new(),
            },
            last: None,
            pid: None,
            restart_count: 0,
            ran: false,
            want_start: true,
            not_before: Instant::now(),
            done: false,
            ready: false,
            started: false,
            startup: None,
            liveness: None,
            readiness: None,
            kill_deadline: None,
            launch: None,
            log: None,
        }
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    fn record(&self) -> ContainerRecord {
        ContainerRecord {
            pid: self.pid,
            restart_count: self.restart_count,
            started_at: match &self.state {
                State::Running { started_at } => Some(*started_at),
                _ => None,
            },
            init_done: self.done,
            log: self.log.clone(),
        }
    }
}

struct Worker {
    ctx: Arc<Ctx>,
    uid: String,
    namespace: String,
    name: String,
    ip: Option<Ipv4Addr>,
    dir: PathBuf,
    pod: Option<Arc<Pod>>,
    volumes: Option<PodVolumes>,
    volume_error: Option<String>,
    next_volume_try: Instant,
    init: Vec<Ctr>,
    main: Vec<Ctr>,
    /// Condition type → (status, last transition).
    conditions: BTreeMap<&'static str, (bool, Timestamp)>,
    start_time: Timestamp,
    /// The pod failed for good (an init container failed with restartPolicy Never).
    failed: bool,
    /// The pod is finished (phase Succeeded/Failed) from before this worker: run nothing.
    finished_before: bool,
    last_status: Option<Value>,
}

/// Runs the worker of pod `uid` until the pod is gone. `rx` carries the latest Pod object, or
/// `None` once the pod has disappeared from the API.
pub(crate) async fn run(ctx: Arc<Ctx>, uid: String, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
    let pod = rx.borrow_and_update().clone();
    let record = ctx.host.lock().pods.get(&uid).cloned();
    let (namespace, name) = match (&pod, &record) {
        (Some(p), _) => (p.namespace().unwrap_or_default(), p.name_any()),
        (None, Some(r)) => (r.namespace.clone(), r.name.clone()),
        (None, None) => return,
    };
    let dir = ctx.host.root.join("pods").join(&uid);
    let spec = pod.as_ref().and_then(|p| p.spec.clone()).unwrap_or_default();
    let mut w = Worker {
        ctx: ctx.clone(),
        uid: uid.clone(),
        namespace,
        name,
        ip: None,
        dir,
        pod: pod.clone(),
        volumes: None,
        volume_error: None,
        next_volume_try: Instant::now(),
        init: spec.init_containers.iter().flatten().cloned().map(|c| Ctr::new(c, true)).collect(),
        main: spec.containers.iter().cloned().map(|c| Ctr::new(c, false)).collect(),
        conditions: BTreeMap::new(),
        start_time: Timestamp::now(),
        failed: false,
        finished_before: false,
        last_status: None,
    };
    if let Some(t) = pod.as_ref().and_then(|p| p.status.as_ref()).and_then(|s| s.start_time.clone())
    {
        w.start_time = t.0;
    }
    match &record {
        Some(r) => w.adopt(r),
        None => w.continue_from_status(),
    }
    loop {
        let latest = rx.borrow_and_update().clone();
        let Some(pod) = latest else {
            w.terminate(VANISHED_GRACE, &mut rx).await;
            w.cleanup();
            return;
        };
        w.pod = Some(pod.clone());
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = grace_period(&pod);
            w.terminate(grace, &mut rx).await;
            w.sync_status().await;
            w.cleanup();
            w.delete_from_api().await;
            return;
        }
        if !w.finished_before {
            w.step().await;
        }
        w.sync_status().await;
        tokio::select! {
            r = rx.changed() => {
                if r.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// The grace period of a deletion: the deletion's own, else the pod's, else 30 s.
fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

impl Worker {
    fn pod(&self) -> Option<&Pod> {
        self.pod.as_deref()
    }

    fn restart_policy(&self) -> String {
        self.pod()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// Takes over a pod recorded by a previous run of this kubelet.
    fn adopt(&mut self, r: &PodRecord) {
        self.ip = Some(r.ip);
        if self.pod.is_none() {
            // Deleted while the kubelet was down: only the record knows its containers.
            for name in r.containers.keys() {
                self.main
                    .push(Ctr::new(Container { name: name.clone(), ..Default::default() }, false));
            }
        }
        self.ctx.host.range.claim(r.ip);
        for c in self.init.iter_mut().chain(self.main.iter_mut()) {
            let Some(cr) = r.containers.get(&c.spec.name) else { continue };
            c.restart_count = cr.restart_count;
            // A container with a log has run: starting it again is a restart.
            c.ran = cr.log.is_some() || cr.init_done;
            c.log = cr.log.clone();
            if cr.init_done {
                c.done = true;
                c.want_start = false;
                c.state = State::Terminated(Terminated {
                    exit: Exit::Code(0),
                    reason: "Completed".into(),
                    started_at: None,
                    finished_at: Timestamp::now(),
                    pid: 0,
                    message: String::new(),
                });
            }
            if let Some(pid) = cr.pid {
                if process::try_wait(pid).is_none() {
                    c.pid = Some(pid);
                    c.want_start = false;
                    c.state =
                        State::Running { started_at: cr.started_at.unwrap_or_else(Timestamp::now) };
                    c.arm_probes(Instant::now());
                }
            }
        }
    }

    /// A pod this kubelet has no record of: keep its address if it is ours and free, carry on
    /// its restart counts, and leave finished pods alone.
    fn continue_from_status(&mut self) {
        let Some(status) = self.pod().and_then(|p| p.status.clone()) else { return };
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            self.finished_before = true;
            return;
        }
        if let Some(ip) = status.pod_ip.as_deref().and_then(|s| s.parse::<Ipv4Addr>().ok()) {
            if self.ctx.host.range.claim(ip) {
                self.ip = Some(ip);
            }
        }
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for s in all {
            let has_run =
                s.state.as_ref().is_some_and(|st| st.running.is_some() || st.terminated.is_some())
                    || s.last_state.as_ref().is_some_and(|st| st.terminated.is_some());
            for c in self.init.iter_mut().chain(self.main.iter_mut()) {
                if c.spec.name == s.name && has_run {
                    c.restart_count = s.restart_count;
                    c.ran = true;
                }
            }
        }
    }

    /// Saves what a restarted kubelet needs into the pod's record.
    fn save(&self) {
        let Some(ip) = self.ip else { return };
        let names = self
            .pod()
            .map(|p| names::pod_names(p, &self.ctx.opts.cluster_domain))
            .unwrap_or_default();
        let containers = self
            .init
            .iter()
            .chain(self.main.iter())
            .map(|c| (c.spec.name.clone(), c.record()))
            .collect();
        let rec = PodRecord {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            ip,
            names,
            containers,
        };
        self.ctx.host.lock().pods.insert(self.uid.clone(), rec);
    }

    fn facts(&self) -> PodFacts {
        PodFacts {
            pod_ip: self.ip.map(|i| i.to_string()).unwrap_or_default(),
            host_ip: self.ctx.host.range.node_ip().to_string(),
        }
    }

    /// One step: address and names, volumes, then the containers due.
    async fn step(&mut self) {
        if self.ip.is_none() {
            match self.ctx.host.range.allocate() {
                Some(ip) => self.ip = Some(ip),
                None => {
                    self.volume_error = Some("no free pod address in the kubelet's range".into());
                    return;
                }
            }
        }
        self.save();
        // The names resolve before any process starts: members look each other up at start.
        self.ctx.host.flush_names();
        if self.volumes.is_none() {
            if Instant::now() < self.next_volume_try {
                return;
            }
            let Some(pod) = self.pod.clone() else { return };
            let facts = self.facts();
            let ctx = self.ctx.clone();
            let claim_dir = |claim: &str| ctx.claim_dir(&self.namespace, claim);
            let cx = VolumeContext {
                client: ctx.client.clone(),
                pod_dir: &self.dir,
                claim_dir: &claim_dir,
                api_server: ctx.opts.api_server.as_ref(),
                facts: &facts,
            };
            let mut sources = Sources::new(ctx.client.clone(), &self.namespace);
            match volumes::prepare(&cx, &pod, &mut sources).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volume_error = None;
                }
                Err(e) => {
                    self.volume_error = Some(e.to_string());
                    self.next_volume_try = Instant::now() + RETRY;
                    return;
                }
            }
        }
        if self.failed {
            return;
        }
        // Init containers, one at a time, in order.
        for i in 0..self.init.len() {
            if self.init[i].done {
                continue;
            }
            self.drive(true, i).await;
            return;
        }
        for i in 0..self.main.len() {
            self.drive(false, i).await;
        }
    }

    fn ctr(&mut self, init: bool, i: usize) -> &mut Ctr {
        if init {
            &mut self.init[i]
        } else {
            &mut self.main[i]
        }
    }

    /// Moves one container along: notice its exit, start or restart it, probe it.
    async fn drive(&mut self, init: bool, i: usize) {
        let now = Instant::now();
        let policy = self.restart_policy();
        if let Some(pid) = self.ctr(init, i).pid {
            if let Some(exit) = process::try_wait(pid) {
                self.exited(init, i, pid, exit, &policy);
                self.save();
            } else {
                self.probe(init, i).await;
                let c = self.ctr(init, i);
                if c.kill_deadline.is_some_and(|d| now >= d) {
                    process::signal_group(pid, libc::SIGKILL);
                }
            }
            return;
        }
        let c = self.ctr(init, i);
        if !c.want_start || now < c.not_before {
            return;
        }
        self.start(init, i).await;
        self.save();
    }

    fn exited(&mut self, init: bool, i: usize, pid: i32, exit: Exit, policy: &str) {
        let backoff = (self.ctx.opts.restart_backoff, self.ctx.opts.restart_backoff_max);
        let pod_name = self.name.clone();
        let pod_dir = self.dir.clone();
        self.ctx.host.range.forget_process(pid);
        let c = self.ctr(init, i);
        let started_at = match &c.state {
            State::Running { started_at } => Some(*started_at),
            _ => None,
        };
        let reason = if exit == Exit::Code(0) { "Completed" } else { "Error" };
        let message = termination::message(
            &termination::host_file(&pod_dir, &c.spec.name),
            c.spec.termination_message_policy.as_deref(),
            exit == Exit::Code(0),
            c.log.as_deref(),
        );
        let t = Terminated {
            exit,
            reason: reason.into(),
            started_at,
            finished_at: Timestamp::now(),
            pid,
            message,
        };
        tracing::info!(container = %c.spec.name, ?exit, "container exited");
        c.pid = None;
        c.ready = false;
        c.started = false;
        c.kill_deadline = None;
        c.startup = None;
        c.liveness = None;
        c.readiness = None;
        c.state = State::Terminated(t);
        let ok = exit == Exit::Code(0);
        let restart = match (init, policy) {
            (true, _) if ok => {
                c.done = true;
                false
            }
            (_, "Always") => true,
            (_, "OnFailure") => !ok,
            _ => false,
        };
        c.want_start = restart;
        if restart {
            // The first restart is immediate, later ones back off (doubling, capped).
            let n = c.restart_count.clamp(0, 16) as u32;
            let delay =
                if n == 0 { Duration::ZERO } else { (backoff.0 * 2u32.pow(n - 1)).min(backoff.1) };
            c.not_before = Instant::now() + delay;
            if !delay.is_zero() {
                if let State::Terminated(t) = &c.state {
                    c.last = Some(t.clone());
                }
                c.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {delay:?} restarting failed container={} pod={pod_name}",
                        c.spec.name
                    ),
                };
            }
        } else if init && !ok {
            self.failed = true;
        }
    }

    /// Starts (or restarts) a container.
    async fn start(&mut self, init: bool, i: usize) {
        if self.ctx.host.lock().closed {
            return;
        }
        let launch = match self.launch(init, i).await {
            Ok(l) => l,
            Err((reason, message)) => {
                let c = self.ctr(init, i);
                c.state = State::Waiting { reason, message };
                c.not_before = Instant::now() + RETRY;
                return;
            }
        };
        match process::spawn(&launch) {
            Ok(pid) => {
                let cname = self.ctr(init, i).spec.name.clone();
                let closed = {
                    let mut st = self.ctx.host.lock();
                    if !st.closed {
                        if let Some(r) = st.pods.get_mut(&self.uid) {
                            r.containers.entry(cname).or_default().pid = Some(pid);
                        }
                    }
                    st.closed
                };
                if closed {
                    process::kill_and_reap(pid);
                    return;
                }
                self.ctx.host.range.record_process(pid);
                let c = self.ctr(init, i);
                tracing::info!(container = %c.spec.name, pid, argv = ?launch.argv, "container started");
                if c.ran {
                    c.restart_count += 1;
                    if let State::Terminated(t) = &c.state {
                        c.last = Some(t.clone());
                    }
                }
                c.ran = true;
                c.pid = Some(pid);
                c.want_start = false;
                c.state = State::Running { started_at: Timestamp::now() };
                c.log = Some(launch.log.clone());
                c.launch = Some(launch);
                c.arm_probes(Instant::now());
            }
            Err(e) => {
                let c = self.ctr(init, i);
                c.state =
                    State::Waiting { reason: "RunContainerError".into(), message: e.to_string() };
                c.not_before = Instant::now() + RETRY;
            }
        }
    }

    /// Everything needed to start container `i`: argv, environment, mounts, log file.
    async fn launch(&mut self, init: bool, i: usize) -> Result<Launch, (String, String)> {
        let pod = self
            .pod
            .clone()
            .ok_or_else(|| ("ContainerCreating".to_string(), "pod is gone".to_string()))?;
        let vols = self.volumes.clone().unwrap_or_default();
        let facts = self.facts();
        let ctx = self.ctx.clone();
        let hostname = names::pod_hostname(&pod);
        let (spec, restart_count, ran) = {
            let c = self.ctr(init, i);
            (c.spec.clone(), c.restart_count, c.ran)
        };
        let scratch = self.dir.join("containers").join(&spec.name);
        std::fs::create_dir_all(&scratch)
            .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
        let mut base = vec![
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOME".to_string(), scratch.display().to_string()),
            ("HOSTNAME".to_string(), hostname.clone()),
        ];
        if let Some(api) = &ctx.opts.api_server {
            base.extend(api.service_env());
        }
        if let Some(kc) = &vols.kubeconfig {
            base.push(("KUBECONFIG".into(), kc.display().to_string()));
        }
        let mut sources = Sources::new(ctx.client.clone(), &self.namespace);
        let env = container_env(&pod, &spec, &facts, base, &mut sources)
            .await
            .map_err(|e| ("CreateContainerConfigError".to_string(), e.to_string()))?;
        let image = spec.image.clone().unwrap_or_default();
        let command: Vec<String> =
            spec.command.iter().flatten().map(|a| expand_with(a, &env)).collect();
        let args: Option<Vec<String>> =
            spec.args.as_ref().map(|a| a.iter().map(|x| expand_with(x, &env)).collect());
        let argv = ctx
            .opts
            .images
            .argv(&image, &command, args.as_deref())
            .map_err(|e| ("ErrImagePull".to_string(), e.to_string()))?;
        let mut mounts = Vec::new();
        for m in spec.volume_mounts.iter().flatten() {
            let Some(src) = vols.dirs.get(&m.name) else {
                return Err((
                    "CreateContainerConfigError".into(),
                    format!("volumeMount {:?}: no volume of that name", m.name),
                ));
            };
            let sub = m
                .sub_path_expr
                .as_ref()
                .map(|s| expand_with(s, &env))
                .or_else(|| m.sub_path.clone())
                .unwrap_or_default();
            let source = if sub.is_empty() { src.clone() } else { src.join(&sub) };
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| ("CreateContainerError".to_string(), e.to_string()))?;
            }
            mounts.push(Mount {
                source,
                target: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false),
            });
        }
        if let Some(m) = termination::mount(&self.dir, &spec) {
            mounts.push(m);
        }
        let n = if ran { restart_count + 1 } else { restart_count };
        let log = ctx
            .host
            .root
            .join("logs")
            .join(format!("{}_{}_{}", self.namespace, self.name, self.uid))
            .join(&spec.name)
            .join(format!("{n}.log"));
        let cwd = spec
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .map(PathBuf::from)
            .unwrap_or(scratch);
        Ok(Launch { argv, env, cwd, mounts, hostname, log })
    }

    /// Runs the container's probes that are due and acts on their verdicts.
    async fn probe(&mut self, init: bool, i: usize) {
        let Some(ip) = self.ip else { return };
        let pod_grace = self
            .pod()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let launch = match self.ctr(init, i).launch.clone() {
            Some(l) => l,
            // A re-adopted container: rebuild what exec probes run in.
            None => match self.launch(init, i).await {
                Ok(l) => {
                    self.ctr(init, i).launch = Some(l.clone());
                    l
                }
                Err(_) => return,
            },
        };
        let c = self.ctr(init, i);
        let now = Instant::now();
        let ip = IpAddr::V4(ip);
        let mut kill: Option<String> = None;
        if let Some(t) = c.startup.as_mut().filter(|t| t.due(now)) {
            let out = probe::run(&t.probe, &c.spec, ip, &launch).await;
            match t.record(out, Instant::now()) {
                Some(true) => {
                    c.startup = None;
                    c.started = true;
                    c.arm_after_startup(Instant::now());
                }
                Some(false) => {
                    kill = Some(format!(
                        "Startup probe failed: {}",
                        t.last_failure.clone().unwrap_or_default()
                    ))
                }
                None => {}
            }
        } else if c.startup.is_none() {
            if let Some(t) = c.liveness.as_mut().filter(|t| t.due(now)) {
                let out = probe::run(&t.probe, &c.spec, ip, &launch).await;
                if t.record(out, Instant::now()) == Some(false) {
                    kill = Some(format!(
                        "Liveness probe failed: {}",
                        t.last_failure.clone().unwrap_or_default()
                    ));
                    t.verdict = None;
                }
            }
            if let Some(t) = c.readiness.as_mut().filter(|t| t.due(now)) {
                let out = probe::run(&t.probe, &c.spec, ip, &launch).await;
                t.record(out, Instant::now());
            }
            c.ready = match &c.readiness {
                Some(t) => t.verdict == Some(true),
                None => c.started,
            };
        }
        if let (Some(why), Some(pid)) = (kill, c.pid) {
            if c.kill_deadline.is_none() {
                tracing::info!(container = %c.spec.name, %why, "killing the container");
                let grace = c
                    .spec
                    .liveness_probe
                    .as_ref()
                    .and_then(|p| p.termination_grace_period_seconds)
                    .unwrap_or(pod_grace);
                process::signal_group(pid, libc::SIGTERM);
                c.kill_deadline = Some(Instant::now() + Duration::from_secs(grace.max(0) as u64));
                c.ready = false;
            }
        }
    }

    /// Stops every running container: SIGTERM, up to `grace`, then SIGKILL. A later deletion
    /// with a shorter grace period (or the pod vanishing) shortens the wait.
    async fn terminate(&mut self, grace: Duration, rx: &mut watch::Receiver<Option<Arc<Pod>>>) {
        let pids: Vec<i32> =
            self.init.iter().chain(self.main.iter()).filter_map(|c| c.pid).collect();
        for c in self.init.iter_mut().chain(self.main.iter_mut()) {
            c.want_start = false;
        }
        for pid in &pids {
            process::signal_group(*pid, libc::SIGTERM);
        }
        let mut deadline = Instant::now() + grace;
        loop {
            let mut running = false;
            for init in [true, false] {
                let n = if init { self.init.len() } else { self.main.len() };
                for i in 0..n {
                    if let Some(pid) = self.ctr(init, i).pid {
                        match process::try_wait(pid) {
                            Some(exit) => self.exited(init, i, pid, exit, "Never"),
                            None => running = true,
                        }
                    }
                }
            }
            if !running {
                break;
            }
            if Instant::now() >= deadline {
                for c in self.init.iter().chain(self.main.iter()) {
                    if let Some(pid) = c.pid {
                        process::signal_group(pid, libc::SIGKILL);
                    }
                }
            }
            if rx.has_changed().unwrap_or(false) {
                match rx.borrow_and_update().clone() {
                    Some(p) => deadline = deadline.min(Instant::now() + grace_period(&p)),
                    None => deadline = deadline.min(Instant::now() + VANISHED_GRACE),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.save();
    }

    /// Removes the pod's directory, address and names (claims and logs stay).
    fn cleanup(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(ip) = self.ip {
            self.ctx.host.range.release(ip);
        }
        self.ctx.host.lock().pods.remove(&self.uid);
        self.ctx.host.flush_names();
    }

    /// Deletes the (stopped) pod with grace 0, only if it is still this pod.
    async fn delete_from_api(&self) {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        for _ in 0..5 {
            match api.delete(&self.name, &dp).await {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
                Err(e) => {
                    tracing::warn!(pod = %self.name, error = %e, "deleting the stopped pod");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Patches the pod's status if it changed.
    async fn sync_status(&mut self) {
        let Some(pod) = self.pod.clone() else { return };
        if self.finished_before {
            return;
        }
        let status = self.status();
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let body = json!({"metadata": {"uid": self.uid}, "status": status});
        match api
            .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(body))
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                self.last_status = Some(status);
            }
            // Refused as invalid: retrying the same status cannot help, but say why.
            Err(kube::Error::Api(s)) if s.code == 422 => {
                tracing::warn!(pod = %self.name, error = %s.message, "pod status refused");
                self.last_status = Some(status);
            }
            Err(e) => tracing::warn!(pod = %self.name, error = %e, "patching pod status"),
        }
    }

    fn condition(&mut self, type_: &'static str, value: bool) -> Value {
        let now = Timestamp::now();
        let entry = self.conditions.entry(type_).or_insert((value, now));
        if entry.0 != value {
            *entry = (value, now);
        }
        json!({"type": type_, "status": if value { "True" } else { "False" }, "lastTransitionTime": Time(entry.1), "lastProbeTime": null})
    }

    /// The pod's status from the containers' states.
    fn status(&mut self) -> Value {
        let init_done = self.init.iter().all(|c| c.done);
        let main_done = self
            .main
            .iter()
            .all(|c| matches!(c.state, State::Terminated(_)) && !c.want_start && c.pid.is_none());
        let main_ok = self
            .main
            .iter()
            .all(|c| matches!(&c.state, State::Terminated(t) if t.exit == Exit::Code(0)));
        let any_ran = self.main.iter().any(|c| c.ran);
        let phase = if self.failed {
            "Failed"
        } else if !init_done {
            "Pending"
        } else if main_done && !self.main.is_empty() {
            if main_ok {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if any_ran {
            "Running"
        } else {
            "Pending"
        };
        let ready = init_done && !self.main.is_empty() && self.main.iter().all(|c| c.ready);
        let volumes_ready = self.volumes.is_some();
        let conditions = vec![
            self.condition("PodReadyToStartContainers", volumes_ready),
            self.condition("Initialized", init_done),
            self.condition("ContainersReady", ready),
            self.condition("Ready", ready),
            self.condition("PodScheduled", true),
        ];
        let ip = self.ip.map(|i| i.to_string());
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.ctx.host.range.node_ip().to_string(),
            "hostIPs": [{"ip": self.ctx.host.range.node_ip().to_string()}],
            "startTime": Time(self.start_time),
            "initContainerStatuses": self.init.iter().map(container_status).collect::<Vec<_>>(),
            "containerStatuses": self.main.iter().map(container_status).collect::<Vec<_>>(),
            // No qosClass: the API server sets it at creation from the resources and refuses
            // any other value (a fixed "BestEffort" made every status patch of a pod with
            // requests fail with 422, so such pods stayed Pending forever).
        });
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some(msg) = &self.volume_error {
            status["message"] = json!(msg);
            status["reason"] = json!("ContainerCreating");
        } else if let Some(obj) = status.as_object_mut() {
            obj.remove("message");
        }
        status
    }
}

impl Ctr {
    /// Sets up the probes of a container that has just started (or been re-adopted).
    fn arm_probes(&mut self, now: Instant) {
        self.ready = false;
        match self.spec.startup_probe.clone() {
            Some(p) => {
                self.started = false;
                self.startup = Some(Tracker::new(p, now));
                self.liveness = None;
                self.readiness = None;
            }
            None => {
                self.started = true;
                self.arm_after_startup(now);
            }
        }
        if self.init {
            self.startup = None;
            self.liveness = None;
            self.readiness = None;
        }
    }

    fn arm_after_startup(&mut self, now: Instant) {
        self.liveness = self.spec.liveness_probe.clone().map(|p| Tracker::new(p, now));
        self.readiness = self.spec.readiness_probe.clone().map(|p| Tracker::new(p, now));
        if self.readiness.is_none() {
            self.ready = true;
        }
    }
}

fn state_json(s: &State) -> Value {
    match s {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({"waiting": w})
        }
        State::Running { started_at } => json!({"running": {"startedAt": Time(*started_at)}}),
        State::Terminated(t) => json!({"terminated": terminated_json(t)}),
    }
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({
        "exitCode": t.exit.code(),
        "reason": t.reason,
        "finishedAt": Time(t.finished_at),
        "containerID": format!("process://{}", t.pid),
    });
    if let Some(s) = t.started_at {
        v["startedAt"] = json!(Time(s));
    }
    if let Exit::Signal(sig) = t.exit {
        v["signal"] = json!(sig);
    }
    if !t.message.is_empty() {
        v["message"] = json!(t.message);
    }
    v
}

fn container_status(c: &Ctr) -> Value {
    let mut v = json!({
        "name": c.name(),
        "image": c.spec.image.clone().unwrap_or_default(),
        "imageID": format!("process://{}", c.spec.image.clone().unwrap_or_default()),
        "ready": c.ready,
        "started": c.pid.is_some() && c.started,
        "restartCount": c.restart_count,
        "state": state_json(&c.state),
        "lastState": c.last.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or(json!({})),
    });
    if let Some(pid) = c.pid {
        v["containerID"] = json!(format!("process://{pid}"));
    }
    v
}
