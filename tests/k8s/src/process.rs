//! A child process of the rig (kube-apiserver, kube-controller-manager): started with its
//! stdout and stderr appended to a log file, restartable with the same command line, and
//! killed when dropped so that a failing test never leaks a process.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long [`Process::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// One long-lived child process and its log.
pub struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    /// Starts `program args…` with its output appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: Vec<String>, log: PathBuf) -> Result<Process> {
        let mut p = Process {
            name: name.to_string(),
            program: program.to_path_buf(),
            args,
            log,
            child: None,
        };
        p.start()?;
        Ok(p)
    }

    /// Starts the process again (after [`Process::stop`] or a crash) with the same arguments.
    pub fn start(&mut self) -> Result<()> {
        self.stop();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(format!("open {}", self.log.display()), e))?;
        let _ = writeln!(log, "=== oxcd-rig: {} {}", self.program.display(), self.args.join(" "));
        let err_log =
            log.try_clone().map_err(|e| Error::io(format!("dup {}", self.log.display()), e))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .spawn()
            .map_err(|e| Error::io(format!("start {}", self.program.display()), e))?;
        self.child = Some(child);
        Ok(())
    }

    /// The component's name (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive; a process that exited is reaped and forgotten, and the
    /// exit status returned as an error message.
    pub fn check_running(&mut self) -> std::result::Result<(), String> {
        match self.child.as_mut() {
            None => Err("not running".into()),
            Some(c) => match c.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => {
                    self.child = None;
                    Err(format!("exited: {status}"))
                }
                Err(e) => Err(format!("cannot query: {e}")),
            },
        }
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// An [`Error::Start`] for this process with its log tail.
    pub fn start_error(&self, message: impl Into<String>) -> Error {
        Error::Start {
            what: self.name.clone(),
            message: message.into(),
            log: self.log.clone(),
            log_tail: self.log_tail(30),
        }
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; no-op when not running.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            oxcd_e2e::server::signal(c.id(), libc::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(c.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }

    /// SIGKILL and reap; no-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
