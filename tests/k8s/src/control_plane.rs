//! The control plane: storage (oxcd or etcd 3.6, 1 or 3 members), kube-apiserver on it, and
//! kube-controller-manager, all on 127.0.0.1 with free ports and one temporary directory.
//!
//! The same [`Options`] with [`StorageKind::Etcd36`] gives the identical control plane on real
//! etcd, which is how the tests check that Kubernetes sees no difference. Everything is
//! stopped when the [`ControlPlane`] is dropped (controller manager, then apiserver, then the
//! storage members; fields drop in declaration order).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use oxcd_e2e::etcdctl::run_command;
use oxcd_e2e::server::{Cluster, Kind, StartError};
use oxcd_e2e::{CtlOutput, Spawned};

use crate::bins;
use crate::certs::{Pki, APISERVER_SANS};
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::process::Process;

/// How long kube-apiserver may take to answer `/readyz` with `ok` (it is slow to start on a
/// loaded 2-core machine: it installs its bootstrap RBAC and priority-level objects first).
pub const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long kube-controller-manager may take until its service-account controller has made the
/// `default` ServiceAccount of the `default` namespace.
pub const CONTROLLERS_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one `kubectl` run may take before it is killed.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);

/// The service range given to kube-apiserver (the `kubernetes` Service gets 10.0.0.1).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.0.0.0/24";

/// The kube-controller-manager controllers the rig runs by default: what Deployments,
/// StatefulSets, Services, namespaces and service accounts need (kube-controller-manager
/// 1.36's names).
pub const DEFAULT_CONTROLLERS: &[&str] = &[
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "garbage-collector-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    "disruption-controller",
    "ttl-after-finished-controller",
];

/// Which store kube-apiserver runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// oxcd, the store under test.
    Oxcd,
    /// etcd 3.6 built by `scripts/k8s-bins.sh`, the reference.
    Etcd36,
}

impl StorageKind {
    fn member_kind(self) -> Kind {
        match self {
            StorageKind::Oxcd => Kind::Oxcd,
            StorageKind::Etcd36 => Kind::Etcd36,
        }
    }

    /// Short label for messages.
    pub fn label(self) -> &'static str {
        match self {
            StorageKind::Oxcd => "oxcd",
            StorageKind::Etcd36 => "etcd 3.6",
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// The store under kube-apiserver.
    pub storage: StorageKind,
    /// Storage members (1 or 3).
    pub members: usize,
    /// Extra flags for every storage member (etcd's flags; oxcd takes the same).
    pub storage_args: Vec<String>,
    /// kube-apiserver's `--event-ttl`: Events are stored with a lease of this TTL.
    pub event_ttl: Duration,
    /// Extra kube-apiserver flags, appended last (so they override the rig's).
    pub apiserver_args: Vec<String>,
    /// kube-controller-manager's `--controllers`; empty: do not start it.
    pub controllers: Vec<String>,
}

impl Options {
    /// One member of `storage`, the default controllers, etcd's default event TTL of 1 h.
    pub fn new(storage: StorageKind) -> Options {
        Options {
            storage,
            members: 1,
            storage_args: Vec::new(),
            event_ttl: Duration::from_secs(3600),
            apiserver_args: Vec::new(),
            controllers: DEFAULT_CONTROLLERS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Sets the number of storage members.
    pub fn members(mut self, n: usize) -> Options {
        self.members = n;
        self
    }

    /// Sets kube-apiserver's `--event-ttl`.
    pub fn event_ttl(mut self, ttl: Duration) -> Options {
        self.event_ttl = ttl;
        self
    }

    /// Adds a kube-apiserver flag.
    pub fn apiserver_arg(mut self, arg: impl Into<String>) -> Options {
        self.apiserver_args.push(arg.into());
        self
    }

    /// Adds a flag for every storage member.
    pub fn storage_arg(mut self, arg: impl Into<String>) -> Options {
        self.storage_args.push(arg.into());
        self
    }

    /// Starts no kube-controller-manager.
    pub fn without_controller_manager(mut self) -> Options {
        self.controllers.clear();
        self
    }
}

/// A running control plane. Dropping it stops every process it started.
pub struct ControlPlane {
    controller_manager: Option<Process>,
    apiserver: Process,
    storage: Arc<Mutex<Cluster>>,
    storage_kind: StorageKind,
    client: kube::Client,
    server_url: String,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    pki: Pki,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts storage, kube-apiserver (waits for `/readyz`) and, unless
    /// [`Options::without_controller_manager`], kube-controller-manager (waits until its
    /// controllers made the `default` ServiceAccount).
    pub async fn start(opts: Options) -> Result<ControlPlane> {
        let apiserver_bin = bins::kube_apiserver()?;
        let kcm_bin = bins::kube_controller_manager()?;
        let kubectl = bins::kubectl()?;
        if opts.storage == StorageKind::Etcd36 {
            bins::etcd36()?;
        }
        let dir = tempfile::Builder::new()
            .prefix("oxcd-rig-")
            .tempdir()
            .map_err(|e| Error::io("create the rig's temporary directory", e))?;

        let storage = start_storage(&opts).await?;
        let endpoints = storage.client_urls().join(",");
        let storage = Arc::new(Mutex::new(storage));

        let pki = Pki::create(&dir.path().join("pki"))?;
        let serving = pki.serving("apiserver", APISERVER_SANS)?;
        let admin = pki.client("admin", "kubernetes-admin", Some("system:masters"))?;
        let sa = pki.service_account_keys()?;
        let kubeconfig = dir.path().join("admin.kubeconfig");

        // A port picked free can be taken by another process before kube-apiserver binds it:
        // start again on a new port when the log says so.
        let mut attempt = 0;
        let (apiserver, server_url, client) = loop {
            attempt += 1;
            let port = oxcd_e2e::ports::free_port();
            let server_url = format!("https://127.0.0.1:{port}");
            let mut args = vec![
                format!("--etcd-servers={endpoints}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--tls-cert-file={}", serving.cert.display()),
                format!("--tls-private-key-file={}", serving.key.display()),
                format!("--client-ca-file={}", pki.ca_cert().display()),
                "--authorization-mode=Node,RBAC".into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", sa.public.display()),
                format!("--service-account-signing-key-file={}", sa.private.display()),
                format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                format!("--cert-dir={}", dir.path().join("apiserver-certs").display()),
                format!("--event-ttl={}s", opts.event_ttl.as_secs().max(1)),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
                // The `kubernetes` Service cannot have a loopback endpoint (validation refuses
                // 127.0.0.0/8): without this the reconciler logs an error every 10 s.
                "--endpoint-reconciler-type=none".into(),
            ];
            args.extend(opts.apiserver_args.iter().cloned());
            let mut apiserver = Process::spawn(
                "kube-apiserver",
                &apiserver_bin,
                args,
                dir.path().join("kube-apiserver.log"),
            )?;
            kubeconfig::write(&kubeconfig, "oxcd-rig", &server_url, &pki.ca_cert(), &admin)?;
            let client = kubeconfig::client(&kubeconfig).await?;
            match wait_readyz(&client, &mut apiserver, APISERVER_READY_TIMEOUT).await {
                Ok(()) => break (apiserver, server_url, client),
                Err(e)
                    if attempt < 3 && apiserver.log_tail(30).contains("address already in use") =>
                {
                    tracing::warn!("kube-apiserver port {port} taken, retrying: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            }
        };

        let controller_manager = if opts.controllers.is_empty() {
            None
        } else {
            let kcm_client =
                pki.client("kube-controller-manager", "system:kube-controller-manager", None)?;
            let kcm_kubeconfig = dir.path().join("kube-controller-manager.kubeconfig");
            kubeconfig::write(
                &kcm_kubeconfig,
                "oxcd-rig",
                &server_url,
                &pki.ca_cert(),
                &kcm_client,
            )?;
            let args = vec![
                format!("--kubeconfig={}", kcm_kubeconfig.display()),
                // No serving port: readiness is judged by what the controllers do.
                "--secure-port=0".into(),
                // One instance: no leader election, so a storage outage longer than the
                // renew deadline does not make it exit.
                "--leader-elect=false".into(),
                format!("--controllers={}", opts.controllers.join(",")),
                "--use-service-account-credentials=true".into(),
                format!("--service-account-private-key-file={}", sa.private.display()),
                format!("--root-ca-file={}", pki.ca_cert().display()),
                "--cluster-name=oxcd-rig".into(),
            ];
            let mut kcm = Process::spawn(
                "kube-controller-manager",
                &kcm_bin,
                args,
                dir.path().join("kube-controller-manager.log"),
            )?;
            wait_default_service_account(&client, &mut kcm).await?;
            Some(kcm)
        };

        Ok(ControlPlane {
            controller_manager,
            apiserver,
            storage,
            storage_kind: opts.storage,
            client,
            server_url,
            kubeconfig,
            kubectl,
            pki,
            dir,
        })
    }

    /// A client authenticated as the admin (`system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>` of kube-apiserver.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// A `kubectl` command using the admin kubeconfig; add arguments and run it.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    /// Runs `kubectl args…` to completion (killed after [`KUBECTL_TIMEOUT`]), capturing output.
    pub fn kubectl_run(&self, args: &[&str]) -> CtlOutput {
        self.kubectl_input(args, None)
    }

    /// Like [`ControlPlane::kubectl_run`], with `stdin` fed to kubectl (e.g. `apply -f -`).
    pub fn kubectl_input(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        let mut cmd = self.kubectl();
        cmd.args(args);
        run_command(cmd, format!("kubectl {}", args.join(" ")), stdin, KUBECTL_TIMEOUT)
    }

    /// Starts a long-running `kubectl args…` (e.g. `get -w`) whose output lines are read as
    /// they come; it is killed when the [`Spawned`] is dropped.
    pub fn kubectl_spawn(&self, args: &[&str]) -> Spawned {
        let mut cmd = self.kubectl();
        cmd.args(args);
        Spawned::start(cmd, format!("kubectl {}", args.join(" ")))
    }

    /// The store kube-apiserver runs on.
    pub fn storage_kind(&self) -> StorageKind {
        self.storage_kind
    }

    /// Client URLs of the storage members (kube-apiserver's `--etcd-servers`).
    pub fn storage_endpoints(&self) -> Vec<String> {
        self.storage().client_urls()
    }

    /// The storage members, for direct access (etcdctl, logs, faults). Blocking methods of
    /// [`Cluster`] must not be called from an async task; use [`ControlPlane::with_storage`].
    pub fn storage(&self) -> MutexGuard<'_, Cluster> {
        self.storage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the storage cluster on a blocking thread (member starts and stops wait).
    pub async fn with_storage<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Cluster) -> T + Send + 'static,
    ) -> T {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = storage.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .expect("storage task panicked")
    }

    /// Restarts every storage member (all stopped, then all started: a full outage under
    /// kube-apiserver), waits until the members and then kube-apiserver are ready again.
    pub async fn restart_storage(&mut self) -> Result<()> {
        self.with_storage(|c| {
            for m in &mut c.members {
                m.stop();
            }
            for m in &mut c.members {
                m.respawn().map_err(storage_error)?;
            }
            for m in &mut c.members {
                m.wait_ready(oxcd_e2e::server::READY_TIMEOUT).map_err(storage_error)?;
            }
            Ok::<(), Error>(())
        })
        .await?;
        self.wait_ready().await
    }

    /// Restarts storage member `i` alone (the others keep quorum), waits until it is ready.
    pub async fn restart_storage_member(&mut self, i: usize) -> Result<()> {
        self.with_storage(move |c| c.members[i].try_restart().map_err(storage_error)).await
    }

    /// Waits until kube-apiserver answers `/readyz` with `ok`.
    pub async fn wait_ready(&mut self) -> Result<()> {
        wait_readyz(&self.client, &mut self.apiserver, APISERVER_READY_TIMEOUT).await
    }

    /// kube-apiserver's process id (benchmarks read its CPU time), while it runs.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.pid()
    }

    /// kube-apiserver's log file.
    pub fn apiserver_log(&self) -> &Path {
        self.apiserver.log_path()
    }

    /// kube-controller-manager's log file, when it runs.
    pub fn controller_manager_log(&self) -> Option<&Path> {
        self.controller_manager.as_ref().map(Process::log_path)
    }

    /// The last lines of kube-apiserver's log.
    pub fn apiserver_log_tail(&self, n: usize) -> String {
        self.apiserver.log_tail(n)
    }

    /// The rig's CA, to issue more client certificates (e.g. a kubelet's).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The rig's temporary directory (certificates, kubeconfigs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the temporary directory after the processes stop (for a person to look at).
    pub fn keep_dir(self) -> PathBuf {
        let ControlPlane { controller_manager, apiserver, storage, dir, .. } = self;
        drop(controller_manager);
        drop(apiserver);
        drop(storage);
        dir.keep()
    }
}

fn storage_error(e: StartError) -> Error {
    Error::Storage(e.to_string())
}

async fn start_storage(opts: &Options) -> Result<Cluster> {
    let kind = opts.storage.member_kind();
    let n = opts.members;
    let extra = opts.storage_args.clone();
    tokio::task::spawn_blocking(move || {
        Cluster::try_start(kind, n, |mut cfg| {
            cfg.extra_args.extend(extra.iter().cloned());
            cfg
        })
    })
    .await
    .expect("storage start panicked")
    .map_err(storage_error)
}

/// Polls `GET /readyz` until it says `ok`, failing early if the process exits.
async fn wait_readyz(client: &kube::Client, p: &mut Process, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        p.check_running().map_err(|m| p.start_error(m))?;
        let req = http::Request::get("/readyz").body(Vec::new()).expect("static request");
        let last = match client.request_text(req).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            Ok(body) => body,
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(p.start_error(format!("/readyz not ok after {timeout:?}: {last}")));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the service-account controller created `default/default`: the controller
/// manager runs and its controllers reach the apiserver with their own credentials.
async fn wait_default_service_account(client: &kube::Client, p: &mut Process) -> Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + CONTROLLERS_READY_TIMEOUT;
    loop {
        p.check_running().map_err(|m| p.start_error(m))?;
        match api.get_opt("default").await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => tracing::debug!("waiting for default/default ServiceAccount: {e}"),
        }
        if Instant::now() > deadline {
            return Err(p.start_error(format!(
                "the default ServiceAccount did not appear within {CONTROLLERS_READY_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
