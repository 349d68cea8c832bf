//! The kubelet's block of `/etc/hosts`: how pod and Service names resolve for real processes.
//!
//! Each kubelet instance owns one clearly marked block, tagged with its address range, and
//! rewrites only that block; other lines (the machine's own, other rigs' blocks) are kept byte
//! for byte. Writers on this machine serialise on an advisory lock file, and each rewrite is
//! atomic (a new file renamed over the old one, or an in-place write where the file is a mount
//! point that cannot be replaced). A block left by a process that died is replaced by the next
//! owner of the same range, whose tag is the same.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the advisory lock serialising every kubelet's `/etc/hosts` rewrites lives.
const LOCK_PATH: &str = "/tmp/oxcd-kubelet/hosts.lock";

/// One instance's block in a hosts file.
#[derive(Debug)]
pub struct HostsBlock {
    path: PathBuf,
    tag: String,
}

/// The names each address should resolve to, in a stable order.
pub type Entries = BTreeMap<Ipv4Addr, Vec<String>>;

impl HostsBlock {
    /// The block tagged `tag` (e.g. the instance's address range) in the hosts file `path`.
    pub fn new(path: impl Into<PathBuf>, tag: impl Into<String>) -> Self {
        HostsBlock { path: path.into(), tag: tag.into() }
    }

    /// The hosts file this block lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces this instance's block with `entries` (an empty map removes the block).
    pub fn set(&self, entries: &Entries) -> io::Result<()> {
        let _lock = lock()?;
        let old = match fs::read_to_string(&self.path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let new = render(&old, &self.tag, entries);
        if new != old {
            write_atomically(&self.path, &new)?;
        }
        Ok(())
    }

    /// Removes this instance's block.
    pub fn remove(&self) -> io::Result<()> {
        self.set(&Entries::new())
    }
}

/// The tags of every kubelet block in `existing`.
pub fn tags(existing: &str) -> Vec<String> {
    existing
        .lines()
        .filter_map(|l| l.strip_prefix("# BEGIN oxcd-kubelet "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn begin_marker(tag: &str) -> String {
    format!("# BEGIN oxcd-kubelet {tag} (managed by the oxcd test kubelet; do not edit)")
}

fn end_marker(tag: &str) -> String {
    format!("# END oxcd-kubelet {tag}")
}

/// `existing` with the block tagged `tag` replaced by `entries` (appended at the end; removed
/// when `entries` is empty). Every other line is kept as it was.
pub fn render(existing: &str, tag: &str, entries: &Entries) -> String {
    let begin = begin_marker(tag);
    let end = end_marker(tag);
    let mut out = String::with_capacity(existing.len() + 64 * entries.len());
    let mut inside = false;
    for line in existing.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if !inside && bare == begin {
            inside = true;
            continue;
        }
        if inside {
            if bare == end {
                inside = false;
            }
            continue;
        }
        out.push_str(line);
    }
    if entries.values().all(|names| names.is_empty()) {
        return out;
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&begin);
    out.push('\n');
    for (ip, names) in entries {
        if !names.is_empty() {
            out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
    }
    out.push_str(&end);
    out.push('\n');
    out
}

/// An exclusive `flock` on the machine-wide hosts lock, released when dropped.
fn lock() -> io::Result<File> {
    if let Some(dir) = Path::new(LOCK_PATH).parent() {
        fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(LOCK_PATH)?;
    // SAFETY: flock on a descriptor we own; blocking until the other writer is done.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// Replaces `path` with `content` by renaming a sibling temporary file over it, keeping the
/// file's mode; falls back to rewriting in place when `path` cannot be replaced (a bind mount).
fn write_atomically(path: &Path, content: &str) -> io::Result<()> {
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.oxcd-kubelet.{}", std::process::id()));
    let staged = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        // The file is tiny; syncing it keeps a crash from leaving an empty hosts file.
        f.sync_all()
    })();
    if let Err(e) = staged.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EXDEV) | Some(libc::EPERM)) {
            return fs::write(path, content);
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, &[&str])]) -> Entries {
        list.iter()
            .map(|(ip, names)| (ip.parse().unwrap(), names.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    const BASE: &str = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n";

    #[test]
    fn block_is_appended_replaced_and_removed() {
        let e = entries(&[("127.9.0.2", &["a.b.ns.svc", "a.b.ns.svc.cluster.local"])]);
        let with = render(BASE, "127.9.0.0/24", &e);
        assert!(with.starts_with(BASE));
        assert!(with.contains("127.9.0.2\ta.b.ns.svc a.b.ns.svc.cluster.local\n"));
        assert_eq!(render(&with, "127.9.0.0/24", &e), with, "idempotent");
        let e2 = entries(&[("127.9.0.3", &["c.ns.svc"])]);
        let replaced = render(&with, "127.9.0.0/24", &e2);
        assert!(!replaced.contains("127.9.0.2"));
        assert!(replaced.contains("127.9.0.3\tc.ns.svc\n"));
        assert_eq!(render(&replaced, "127.9.0.0/24", &Entries::new()), BASE);
    }

    #[test]
    fn other_blocks_and_lines_are_untouched() {
        let mine = entries(&[("127.9.0.2", &["mine.ns.svc"])]);
        let theirs = entries(&[("127.9.1.2", &["theirs.ns.svc"])]);
        let both = render(&render(BASE, "127.9.1.0/24", &theirs), "127.9.0.0/24", &mine);
        let after =
            render(&format!("{both}10.0.0.1 added-later\n"), "127.9.0.0/24", &Entries::new());
        assert!(after.contains("theirs.ns.svc"));
        assert!(after.contains("10.0.0.1 added-later\n"));
        assert!(!after.contains("mine.ns.svc"));
        assert!(after.starts_with(BASE));
    }

    #[test]
    fn tags_of_all_blocks() {
        let e = entries(&[("127.9.0.2", &["x.ns.svc"])]);
        let two = render(&render(BASE, "127.9.0.0/24", &e), "127.9.1.0/24", &e);
        assert_eq!(tags(&two), vec!["127.9.0.0/24", "127.9.1.0/24"]);
    }

    #[test]
    fn file_without_final_newline() {
        let e = entries(&[("127.9.0.2", &["x.ns.svc"])]);
        let out = render("127.0.0.1 localhost", "t", &e);
        assert!(out.starts_with("127.0.0.1 localhost\n# BEGIN oxcd-kubelet t "));
    }

    #[test]
    fn set_and_remove_on_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        fs::write(&path, BASE).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let block = HostsBlock::new(&path, "127.9.2.0/24");
        block.set(&entries(&[("127.9.2.5", &["p.s.ns.svc"])])).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("127.9.2.5\tp.s.ns.svc\n"));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        block.remove().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), BASE);
    }
}
