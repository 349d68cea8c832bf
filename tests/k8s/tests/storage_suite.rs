//! Kubernetes' storage conformance suites on oxcd, compared with etcd 3.6.
//!
//! The tests of k8s.io/apiserver v0.36.3's `pkg/storage/etcd3` (the store kube-apiserver uses:
//! create/get/list/update/delete with preconditions, pagination, the watcher with progress
//! notification and bookmarks, compaction, linearized reads) and `pkg/storage/cacher` (the
//! watch cache above it), built by `scripts/k8s-storage-suite.sh` so that each test starts its
//! own server process, run once with etcd 3.6 as that server and once with oxcd.
//!
//! The rule: every test or subtest that passes on etcd 3.6 passes on oxcd, except those in the
//! package's `EXCEPTIONS` with the exact reason. An exception that passes on oxcd is an error
//! too (the list stays true). Tests failing on etcd itself are printed, not judged.
//!
//! `OXCD_STORAGE_SUITE_RUN` replaces the default test selection (a Go `-test.run` regexp) of
//! every package, e.g. to rerun one test by hand.

use std::path::PathBuf;
use std::sync::Mutex;

use oxcd_k8s_rig::storage_suite::{Outcome, SuiteRun, Suites};

/// Tests that pass on etcd 3.6 and are known to fail on oxcd, with the exact reason.
const ETCD3_EXCEPTIONS: &[(&str, &str)] = &[];

/// As [`ETCD3_EXCEPTIONS`], for the cacher's suite.
const CACHER_EXCEPTIONS: &[(&str, &str)] = &[];

/// Which etcd3 tests run: all of them (the whole package takes about a minute per server).
const ETCD3_RUN: &str = ".";

/// Which cacher tests run: all of them.
const CACHER_RUN: &str = ".";

/// Each suite runs on two servers at once and starts a process per test: one suite at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Where the suites' outputs go: beside the other build outputs, kept after the test so a
/// difference can be read.
fn log_dir() -> PathBuf {
    oxcd_e2e::bins::target_dir().join("storage-suite")
}

/// Runs `package`'s suite on etcd 3.6 and on oxcd and applies the rule of this file.
fn compare(package: &str, default_run: &str, exceptions: &[(&str, &str)]) {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let suites = Suites::locate().unwrap_or_else(|e| panic!("{e}"));
    let etcd = oxcd_k8s_rig::bins::etcd36().unwrap_or_else(|e| panic!("{e}"));
    let oxcd = oxcd_e2e::bins::oxcd();
    let run = std::env::var("OXCD_STORAGE_SUITE_RUN").unwrap_or_else(|_| default_run.into());
    let go = |server: &PathBuf, label: &str| -> SuiteRun {
        let r = suites
            .run(package, &run, server, label, &log_dir())
            .unwrap_or_else(|e| panic!("{package} on {label}: {e}"));
        eprintln!(
            "[{package}] on {label}: {} passed, {} failed, {} skipped in {:.0?} (output: {})",
            r.with(Outcome::Pass).len(),
            r.with(Outcome::Fail).len(),
            r.with(Outcome::Skip).len(),
            r.elapsed,
            r.out_path.display()
        );
        r
    };
    // The two runs at once: their tests mostly wait on watches and timers (about a minute of
    // CPU in five of wall time), so together they take little longer than one.
    let (on_etcd, on_oxcd) = std::thread::scope(|s| {
        let etcd_run = s.spawn(|| go(&etcd, "etcd-3.6"));
        let oxcd_run = go(&oxcd, "oxcd");
        (etcd_run.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), oxcd_run)
    });

    assert!(
        on_etcd.finished && !on_etcd.with(Outcome::Pass).is_empty(),
        "[{package}] the suite did not run through on etcd 3.6, so the harness is broken: see {}",
        on_etcd.out_path.display()
    );
    for name in on_etcd.with(Outcome::Fail) {
        eprintln!("[{package}] fails on etcd 3.6 itself (not judged): {name}");
    }
    let mut problems = Vec::new();
    for name in on_etcd.with(Outcome::Pass) {
        let got = on_oxcd.outcomes.get(name);
        let excepted = exceptions.iter().find(|(n, _)| *n == name);
        match (got, excepted) {
            (Some(Outcome::Pass), None) => {}
            (Some(Outcome::Pass), Some(_)) => {
                problems.push(format!("{name}: listed as an exception but passes on oxcd"))
            }
            (_, Some((_, reason))) => eprintln!("[{package}] known exception {name}: {reason}"),
            (Some(other), None) => {
                problems.push(format!("{name}: passes on etcd 3.6, {other:?} on oxcd"))
            }
            (None, None) => problems.push(format!(
                "{name}: passes on etcd 3.6, never reported on oxcd ({})",
                if on_oxcd.finished {
                    "not run"
                } else {
                    "the binary ended early: panic or timeout"
                }
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "[{package}] oxcd differs from etcd 3.6 (outputs: {} and {}):\n  {}",
        on_etcd.out_path.display(),
        on_oxcd.out_path.display(),
        problems.join("\n  ")
    );
}

#[test]
fn etcd3_store_and_watcher_suite_passes_on_oxcd_as_on_etcd() {
    compare("etcd3", ETCD3_RUN, ETCD3_EXCEPTIONS);
}

#[test]
fn cacher_suite_passes_on_oxcd_as_on_etcd() {
    compare("cacher", CACHER_RUN, CACHER_EXCEPTIONS);
}
