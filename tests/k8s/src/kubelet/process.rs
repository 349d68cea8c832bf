//! Running one container as a local process, and watching, signalling and reaping it.
//!
//! Each container process gets its own process group (signals reach whatever it forks), its own
//! mount namespace with the pod's volumes bind-mounted at their `mountPath`s (so paths in flags
//! and config files mean what they mean in a container), its own UTS namespace with the pod's
//! hostname, and its output appended to a log file. Mount targets missing on the host are created
//! as empty directories or files (they stay, empty, after the pod is gone: the host's own view is
//! never mounted over). Processes are tracked by pid and reaped with `waitpid(WNOHANG)`, which
//! serves fresh and re-adopted processes alike.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A volume seen inside the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The host directory or file.
    pub source: PathBuf,
    /// Where the container sees it.
    pub target: PathBuf,
    /// `readOnly: true` on the volumeMount.
    pub read_only: bool,
}

/// Everything needed to start one container process.
#[derive(Clone, Debug)]
pub struct Launch {
    /// Program and arguments, `argv[0]` already a host path or a `PATH` name.
    pub argv: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory, as seen inside the container.
    pub cwd: PathBuf,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// The pod's hostname.
    pub hostname: String,
    /// Where stdout and stderr are appended.
    pub log: PathBuf,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// The exit code Kubernetes reports: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Starts `launch`; returns the pid (also the process group id).
pub fn spawn(launch: &Launch) -> io::Result<i32> {
    let Some(program) = launch.argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    if let Some(dir) = launch.log.parent() {
        fs::create_dir_all(dir)?;
    }
    let log = OpenOptions::new().create(true).append(true).open(&launch.log)?;
    for m in &launch.mounts {
        prepare_target(m)?;
    }
    let mounts: Vec<(CString, CString, bool)> = launch
        .mounts
        .iter()
        .map(|m| Ok((cstring(&m.source)?, cstring(&m.target)?, m.read_only)))
        .collect::<io::Result<_>>()?;
    let hostname = launch.hostname.clone().into_bytes();
    let cwd = cstring(&launch.cwd)?;
    let mut cmd = Command::new(program);
    cmd.args(&launch.argv[1..])
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes system calls on data
    // prepared before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS) != 0 {
                return Err(io::Error::last_os_error());
            }
            let root = c"/";
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            for (src, dst, ro) in &mounts {
                let bind = libc::MS_BIND | libc::MS_REC;
                if libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), bind, std::ptr::null())
                    != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if *ro {
                    let f = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
                    if libc::mount(
                        std::ptr::null(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        f,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
            }
            if !hostname.is_empty()
                && libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::chdir(cwd.as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot start {:?}: {e}", launch.argv.join(" ")))
    })?;
    // The child is reaped by pid through `try_wait`; dropping the handle neither waits nor kills.
    Ok(child.id() as i32)
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("NUL in {}", p.display())))
}

/// Makes a mount target exist with the source's kind (directory or file).
fn prepare_target(m: &Mount) -> io::Result<()> {
    if m.source.is_dir() {
        fs::create_dir_all(&m.target)
    } else {
        if let Some(parent) = m.target.parent() {
            fs::create_dir_all(parent)?;
        }
        if !m.target.exists() {
            fs::write(&m.target, b"")?;
        }
        Ok(())
    }
}

/// Whether process `pid` has ended; reaps it if it is our child. `None`: still running.
pub fn try_wait(pid: i32) -> Option<Exit> {
    let mut status = 0;
    // SAFETY: plain waitpid on one pid with WNOHANG.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid {
        if libc::WIFEXITED(status) {
            return Some(Exit::Code(libc::WEXITSTATUS(status)));
        }
        if libc::WIFSIGNALED(status) {
            return Some(Exit::Signal(libc::WTERMSIG(status)));
        }
        return None; // stopped or continued: still there
    }
    if r == 0 {
        return None;
    }
    // Not our child (or already reaped): it is alive as long as /proc knows it, not a zombie.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) if !is_zombie(&stat) => None,
        _ => Some(Exit::Signal(libc::SIGKILL)),
    }
}

fn is_zombie(stat: &str) -> bool {
    stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(true)
}

/// Sends `sig` to process group `pgid` (the container's process and everything it forked).
pub fn signal_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) on a negative pid signals that process group; errors (gone) ignored.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Kills process group `pgid` with SIGKILL and reaps its leader (bounded: ~2 s).
pub fn kill_and_reap(pgid: i32) -> Option<Exit> {
    signal_group(pgid, libc::SIGKILL);
    for _ in 0..200 {
        if let Some(e) = try_wait(pgid) {
            return Some(e);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait(pid: i32) -> Exit {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = try_wait(pid) {
                return e;
            }
            assert!(Instant::now() < deadline, "process {pid} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn runs_with_mounts_hostname_env_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        fs::create_dir_all(&vol).unwrap();
        fs::write(vol.join("f"), "from-volume").unwrap();
        let target = dir.path().join("in-container/data");
        let log = dir.path().join("logs/c.log");
        let launch = Launch {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "cat data/f; echo; hostname; echo $GREETING; pwd; echo x > data/new; exit 3".into(),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("GREETING".into(), "hi".into())],
            cwd: dir.path().join("in-container"),
            mounts: vec![Mount { source: vol.clone(), target, read_only: false }],
            hostname: "oxcd-0".into(),
            log: log.clone(),
        };
        let pid = spawn(&launch).unwrap();
        assert_eq!(wait(pid), Exit::Code(3));
        let out = fs::read_to_string(&log).unwrap();
        let in_container = dir.path().join("in-container").display().to_string();
        assert_eq!(out, format!("from-volume\noxcd-0\nhi\n{in_container}\n"));
        assert_eq!(fs::read_to_string(vol.join("new")).unwrap(), "x\n");
        assert!(!dir.path().join("in-container/data/f").exists(), "host view is not mounted over");
    }

    #[test]
    fn signals_reach_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            argv: vec!["sh".into(), "-c".into(), "sleep 30 & wait".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: dir.path().to_path_buf(),
            mounts: vec![],
            hostname: String::new(),
            log: dir.path().join("log"),
        };
        let pid = spawn(&launch).unwrap();
        assert_eq!(try_wait(pid), None);
        signal_group(pid, libc::SIGTERM);
        assert_eq!(wait(pid), Exit::Signal(libc::SIGTERM));
        assert_eq!(Exit::Signal(libc::SIGKILL).code(), 137);
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            argv: vec!["/nonexistent/program".into()],
            env: vec![],
            cwd: dir.path().to_path_buf(),
            mounts: vec![],
            hostname: String::new(),
            log: dir.path().join("log"),
        };
        let err = spawn(&launch).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/program"), "{err}");
    }
}
