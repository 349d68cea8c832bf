//! Kubernetes' storage conformance suites (the tests of k8s.io/apiserver's `pkg/storage/etcd3`
//! and `pkg/storage/cacher`) run against an external server binary.
//!
//! `scripts/k8s-storage-suite.sh` builds them as Go test binaries whose test server starts a
//! fresh process of `$OXCD_STORAGE_SERVER_BIN` for each test (see the script). This module finds
//! those binaries, runs one against a given server (oxcd or etcd 3.6) and reads back the outcome
//! of every test and subtest from the `-test.v` output, so that the caller can compare two runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The environment variable through which the suite's test server learns which binary to
/// start (defined by the generated test server of `scripts/k8s-storage-suite.sh`).
pub const SERVER_BIN_ENV: &str = "OXCD_STORAGE_SERVER_BIN";

/// The Go test binaries and the module copy they were built from.
#[derive(Debug, Clone)]
pub struct Suites {
    /// Directory holding `<package>.test`.
    bin_dir: PathBuf,
    /// The k8s.io/apiserver module copy: each binary runs in its package's directory, as
    /// `go test` would run it.
    src_dir: PathBuf,
}

impl Suites {
    /// Asks `scripts/k8s-storage-suite.sh --print` where the suites are; an error naming the
    /// script when they are not built (tests never start a Go build themselves).
    pub fn locate() -> Result<Suites> {
        let script = oxcd_e2e::bins::workspace_root().join("scripts").join("k8s-storage-suite.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("--print")
            .output()
            .map_err(|e| Error::io(format!("run {}", script.display()), e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let find = |key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(PathBuf::from))
        };
        match (out.status.success(), find("storage-suite"), find("storage-suite-src")) {
            (true, Some(bin_dir), Some(src_dir)) => Ok(Suites { bin_dir, src_dir }),
            _ => Err(Error::MissingBinary {
                name: "the storage suites (etcd3.test, cacher.test)",
                looked_in: "scripts/k8s-storage-suite.sh --print; run scripts/k8s-storage-suite.sh"
                    .into(),
            }),
        }
    }

    /// Runs the suite of `package` (`etcd3` or `cacher`), restricted to the tests matching
    /// `run` (Go's `-test.run` regexp), against `server`. The output goes to
    /// `<log_dir>/<package>-<label>.{out,err}`; a test failing is an outcome, not an error.
    pub fn run(
        &self,
        package: &str,
        run: &str,
        server: &Path,
        label: &str,
        log_dir: &Path,
    ) -> Result<SuiteRun> {
        let bin = self.bin_dir.join(format!("{package}.test"));
        let cwd = self.src_dir.join("pkg/storage").join(package);
        std::fs::create_dir_all(log_dir)
            .map_err(|e| Error::io(format!("create {}", log_dir.display()), e))?;
        let out_path = log_dir.join(format!("{package}-{label}.out"));
        let err_path = log_dir.join(format!("{package}-{label}.err"));
        let create =
            |p: &Path| File::create(p).map_err(|e| Error::io(format!("create {}", p.display()), e));
        let start = Instant::now();
        let status = Command::new(&bin)
            .args(["-test.v", "-test.count=1", "-test.timeout=30m", "-test.run", run])
            .current_dir(&cwd)
            .env(SERVER_BIN_ENV, server)
            .stdin(Stdio::null())
            .stdout(create(&out_path)?)
            .stderr(create(&err_path)?)
            .status()
            .map_err(|e| Error::io(format!("run {}", bin.display()), e))?;
        let elapsed = start.elapsed();
        let file = File::open(&out_path)
            .map_err(|e| Error::io(format!("read {}", out_path.display()), e))?;
        let mut outcomes = BTreeMap::new();
        let mut finished = false;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| Error::io(format!("read {}", out_path.display()), e))?;
            if let Some((name, outcome)) = parse_result_line(&line) {
                outcomes.insert(name, outcome);
            }
            // The binary's last words: "PASS" or "FAIL" alone (a panic or timeout prints neither).
            finished |= line == "PASS" || line == "FAIL";
        }
        Ok(SuiteRun { outcomes, finished, exit_ok: status.success(), elapsed, out_path })
    }
}

/// What one test or subtest ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `--- PASS`.
    Pass,
    /// `--- FAIL`.
    Fail,
    /// `--- SKIP`.
    Skip,
}

/// The outcome of one run of a suite binary.
#[derive(Debug)]
pub struct SuiteRun {
    /// Every test and subtest that reported, by full name (`TestX/sub`).
    pub outcomes: BTreeMap<String, Outcome>,
    /// The binary ended normally (printed its final PASS/FAIL): tests missing from
    /// `outcomes` after a panic or a timeout never ran.
    pub finished: bool,
    /// The binary exited 0 (every test passed).
    pub exit_ok: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The `-test.v` output, to look at when something differs.
    pub out_path: PathBuf,
}

impl SuiteRun {
    /// The names of the tests that ended as `outcome`.
    pub fn with(&self, outcome: Outcome) -> Vec<&str> {
        self.outcomes.iter().filter(|(_, o)| **o == outcome).map(|(n, _)| n.as_str()).collect()
    }
}

/// Reads one `--- PASS: TestName/sub (0.01s)` line of Go's verbose test output.
fn parse_result_line(line: &str) -> Option<(String, Outcome)> {
    let rest = line.trim_start().strip_prefix("--- ")?;
    let (word, rest) = rest.split_once(": ")?;
    let outcome = match word {
        "PASS" => Outcome::Pass,
        "FAIL" => Outcome::Fail,
        "SKIP" => Outcome::Skip,
        _ => return None,
    };
    let name = rest.rsplit_once(" (").map_or(rest, |(n, _)| n);
    Some((name.to_string(), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_of_tests_and_subtests_are_read() {
        assert_eq!(
            parse_result_line("--- PASS: TestCreate (1.05s)"),
            Some(("TestCreate".into(), Outcome::Pass))
        );
        assert_eq!(
            parse_result_line("    --- FAIL: TestCreate/create_with_ResourceVersion_set (0.00s)"),
            Some(("TestCreate/create_with_ResourceVersion_set".into(), Outcome::Fail))
        );
        assert_eq!(
            parse_result_line("--- SKIP: TestWatchList (0.00s)"),
            Some(("TestWatchList".into(), Outcome::Skip))
        );
        assert_eq!(parse_result_line("=== RUN   TestCreate"), None);
        assert_eq!(
            parse_result_line("I1203 18:23:37.552970 feature_support_checker.go:133]"),
            None
        );
    }
}
