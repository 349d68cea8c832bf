//! Loopback addresses: each kubelet instance owns one `127.A.B.0/24` and gives every pod its own
//! address in it, so the same port in many pods (and in several rigs at once) never collides.
//!
//! Ownership of a range is an exclusive `flock` on `/tmp/oxcd-kubelet/127.A.B.lock`, held for
//! the instance's life and released by the kernel if the process dies. `127.A.B.1` is the node's
//! own address; pods get `.2`–`.254`, handed out round-robin so an address is not reused right
//! after its pod went away.
//!
//! The range also lists the process groups started in it (`127.A.B.procs/<pgid>`, holding the
//! process' start time): a new owner kills those a dead owner left running, since they would
//! still hold the range's addresses.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Directory of the per-range lock files.
const LOCK_DIR: &str = "/tmp/oxcd-kubelet";
/// The second octets searched for a free range when none is asked for.
const SEARCH_FIRST: std::ops::RangeInclusive<u8> = 100..=119;
/// Pod addresses in a range: `.2`–`.254`.
const POD_HOSTS: std::ops::RangeInclusive<u8> = 2..=254;

/// A `127.A.B.0/24` owned by this instance.
#[derive(Debug)]
pub struct AddressRange {
    a: u8,
    b: u8,
    _lock: File,
    state: Mutex<Allocation>,
}

#[derive(Debug, Default)]
struct Allocation {
    in_use: BTreeSet<u8>,
    next: u8,
}

impl AddressRange {
    /// Takes `127.a.b.0/24` if given, else the first free range in `127.100-119.*`, starting at an
    /// offset derived from the process id so that concurrent rigs rarely contend.
    pub fn acquire(wanted: Option<(u8, u8)>) -> io::Result<AddressRange> {
        fs::create_dir_all(LOCK_DIR)?;
        if let Some((a, b)) = wanted {
            return Self::try_take(a, b)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("127.{a}.{b}.0/24 is owned by another kubelet on this machine"),
                )
            });
        }
        let candidates: Vec<(u8, u8)> =
            SEARCH_FIRST.flat_map(|a| (0..=255u8).map(move |b| (a, b))).collect();
        let start = std::process::id() as usize % candidates.len();
        for i in 0..candidates.len() {
            let (a, b) = candidates[(start + i) % candidates.len()];
            if let Some(r) = Self::try_take(a, b)? {
                return Ok(r);
            }
        }
        Err(io::Error::new(io::ErrorKind::AddrInUse, "every 127.100-119.x.0/24 range is taken"))
    }

    fn try_take(a: u8, b: u8) -> io::Result<Option<AddressRange>> {
        let path = format!("{LOCK_DIR}/127.{a}.{b}.lock");
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(e);
        }
        let state = Mutex::new(Allocation { in_use: BTreeSet::new(), next: *POD_HOSTS.start() });
        let range = AddressRange { a, b, _lock: f, state };
        range.kill_leftovers();
        Ok(Some(range))
    }

    fn procs_dir(&self) -> PathBuf {
        PathBuf::from(format!("{LOCK_DIR}/127.{}.{}.procs", self.a, self.b))
    }

    /// Records a process group started with an address of this range.
    pub fn record_process(&self, pgid: i32) {
        let dir = self.procs_dir();
        if let (Ok(()), Some(start)) = (fs::create_dir_all(&dir), start_time(pgid)) {
            let _ = fs::write(dir.join(pgid.to_string()), start);
        }
    }

    /// Forgets a process group that has ended.
    pub fn forget_process(&self, pgid: i32) {
        let _ = fs::remove_file(self.procs_dir().join(pgid.to_string()));
    }

    /// Kills the recorded process groups that still run (same pid and start time).
    fn kill_leftovers(&self) {
        let Ok(entries) = fs::read_dir(self.procs_dir()) else { return };
        for e in entries.flatten() {
            let recorded = fs::read_to_string(e.path()).unwrap_or_default();
            if let Ok(pgid) = e.file_name().to_string_lossy().parse::<i32>() {
                if pgid > 1 && start_time(pgid).as_deref() == Some(recorded.as_str()) {
                    // SAFETY: kill(2) on a process group this range's previous owner started.
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
            }
            let _ = fs::remove_file(e.path());
        }
    }

    /// Removes the hosts blocks (and kills the processes) of ranges whose owner has died: their
    /// names would otherwise shadow the same names published by a live kubelet.
    pub fn reclaim_stale(hosts: &Path) -> io::Result<()> {
        let text = match fs::read_to_string(hosts) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for tag in super::hosts::tags(&text) {
            let Some((a, b)) = parse_cidr(&tag) else { continue };
            // Taking the lock succeeds only if no live process owns the range.
            if let Some(dead) = Self::try_take(a, b)? {
                super::hosts::HostsBlock::new(hosts, tag).remove()?;
                drop(dead);
            }
        }
        Ok(())
    }

    /// `127.A.B.0/24`, the tag of this instance's `/etc/hosts` block.
    pub fn cidr(&self) -> String {
        format!("127.{}.{}.0/24", self.a, self.b)
    }

    /// `127.A.B.1`, the node's InternalIP.
    pub fn node_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.a, self.b, 1)
    }

    /// Whether `ip` belongs to this range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        o[0] == 127 && o[1] == self.a && o[2] == self.b
    }

    /// A free pod address, or `None` when all 253 are in use.
    pub fn allocate(&self) -> Option<Ipv4Addr> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let span = POD_HOSTS.end() - POD_HOSTS.start() + 1;
        for i in 0..span {
            let host = POD_HOSTS.start() + (st.next - POD_HOSTS.start() + i) % span;
            if st.in_use.insert(host) {
                st.next = if host == *POD_HOSTS.end() { *POD_HOSTS.start() } else { host + 1 };
                return Some(Ipv4Addr::new(127, self.a, self.b, host));
            }
        }
        None
    }

    /// Marks `ip` as used (a pod re-adopted after a kubelet restart); false if it is not ours.
    pub fn claim(&self, ip: Ipv4Addr) -> bool {
        if !self.contains(ip) || !POD_HOSTS.contains(&ip.octets()[3]) {
            return false;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.in_use.insert(ip.octets()[3]);
        true
    }

    /// Returns `ip` to the pool.
    pub fn release(&self, ip: Ipv4Addr) {
        if self.contains(ip) {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.in_use.remove(&ip.octets()[3]);
        }
    }
}

/// `127.A.B.0/24` → `(A, B)`.
fn parse_cidr(tag: &str) -> Option<(u8, u8)> {
    let mut it = tag.strip_suffix(".0/24")?.split('.');
    (it.next()? == "127").then_some(())?;
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some((a, b))
}

/// A process' start time (field 22 of `/proc/<pid>/stat`), which tells a pid's reuse apart.
fn start_time(pid: i32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_exclusive_and_addresses_round_robin() {
        let r = AddressRange::acquire(None).unwrap();
        let o = r.node_ip().octets();
        assert!(AddressRange::acquire(Some((o[1], o[2]))).is_err(), "a range has one owner");
        let other = AddressRange::acquire(None).unwrap();
        assert_ne!(other.cidr(), r.cidr());

        let first = r.allocate().unwrap();
        assert_eq!(first.octets()[3], 2);
        let second = r.allocate().unwrap();
        assert_eq!(second.octets()[3], 3);
        r.release(first);
        assert_eq!(
            r.allocate().unwrap().octets()[3],
            4,
            "a released address is not reused at once"
        );
        assert!(r.claim(Ipv4Addr::new(127, o[1], o[2], 9)));
        assert!(!r.claim(Ipv4Addr::new(127, 0, 0, 9)));
        let mut n = 3;
        while r.allocate().is_some() {
            n += 1;
        }
        assert_eq!(n, 253, "every address .2-.254 handed out once");
        assert_eq!(parse_cidr(&r.cidr()), Some((o[1], o[2])));
        assert_eq!(parse_cidr("10.1.2.0/24"), None);
    }
}
