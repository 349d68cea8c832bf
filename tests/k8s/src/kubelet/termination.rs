//! Termination messages, as the kubelet offers them: a container's `terminationMessagePath`
//! (the API server defaults it to `/dev/termination-log`) is a file of the pod bind-mounted
//! into the container, emptied at each start; when the container ends, what it wrote (at most
//! 4096 bytes) becomes `state.terminated.message`. With `terminationMessagePolicy:
//! FallbackToLogsOnError` a failed container that wrote nothing gets the tail of its log
//! instead (the last 80 lines, at most 2048 bytes). Programs use it to hand a small result
//! to whoever watches the pod (a Job's outcome, a reason for a crash).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use super::process::Mount;

/// Most bytes of a message read from the file.
const MAX_MESSAGE: u64 = 4096;
/// Most bytes of a message taken from the log.
const MAX_LOG_BYTES: u64 = 2048;
/// Most lines of a message taken from the log.
const MAX_LOG_LINES: usize = 80;

/// The host file behind container `name`'s termination message, in the pod's directory.
pub fn host_file(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("termination").join(name)
}

/// The mount of `c`'s (emptied) termination-message file, if it asks for one. `None` too
/// when the target cannot be made on the host (a read-only `/dev`): the container then runs
/// without it rather than not at all.
pub fn mount(pod_dir: &Path, c: &Container) -> Option<Mount> {
    let target = PathBuf::from(c.termination_message_path.as_deref().filter(|p| !p.is_empty())?);
    let source = host_file(pod_dir, &c.name);
    let made = source
        .parent()
        .map(fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|()| fs::write(&source, b""));
    if let Err(e) = made {
        tracing::warn!(file = %source.display(), error = %e, "termination message file");
        return None;
    }
    if !target.exists() {
        let created = target
            .parent()
            .map(fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|()| fs::write(&target, b""));
        if let Err(e) = created {
            tracing::debug!(target = %target.display(), error = %e, "no termination message mount");
            return None;
        }
    }
    Some(Mount { source, target, read_only: false })
}

/// The message of a container that ended: its file, else (failed, with
/// `FallbackToLogsOnError`) the tail of its log.
pub fn message(file: &Path, policy: Option<&str>, succeeded: bool, log: Option<&Path>) -> String {
    let written = read_tail(file, MAX_MESSAGE).unwrap_or_default();
    if !written.is_empty() || succeeded || policy != Some("FallbackToLogsOnError") {
        return written;
    }
    let Some(tail) = log.and_then(|l| read_tail(l, MAX_LOG_BYTES)) else { return String::new() };
    let lines: Vec<&str> = tail.lines().collect();
    lines[lines.len().saturating_sub(MAX_LOG_LINES)..].join("\n")
}

/// The last `max` bytes of `path` as text (invalid UTF-8 replaced).
fn read_tail(path: &Path, max: u64) -> Option<String> {
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_wins_and_logs_are_a_fallback_for_failures_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("msg");
        let log = dir.path().join("log");
        let lines: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
        fs::write(&log, lines.join("\n") + "\n").unwrap();
        let fallback = Some("FallbackToLogsOnError");
        // Nothing written: the log's tail only for a failure with the fallback policy.
        assert_eq!(message(&file, fallback, true, Some(&log)), "");
        assert_eq!(message(&file, Some("File"), false, Some(&log)), "");
        let tail = message(&file, fallback, false, Some(&log));
        assert!(tail.ends_with("line 199") && tail.lines().count() == 80, "{tail}");
        fs::write(&file, "{\"ok\":true}").unwrap();
        assert_eq!(message(&file, fallback, false, Some(&log)), "{\"ok\":true}");
        fs::write(&file, "x".repeat(5000)).unwrap();
        assert_eq!(message(&file, None, true, None).len(), 4096);
    }

    #[test]
    fn each_start_gets_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("in-container/termination-log");
        let c = Container {
            name: "c".into(),
            termination_message_path: Some(target.display().to_string()),
            ..Default::default()
        };
        let m = mount(dir.path(), &c).expect("a mount");
        assert_eq!(m.target, target);
        fs::write(&m.source, "old").unwrap();
        let again = mount(dir.path(), &c).expect("a mount");
        assert_eq!(fs::read(&again.source).unwrap(), b"");
        let none = Container { name: "d".into(), ..Default::default() };
        assert!(mount(dir.path(), &none).is_none());
    }
}
