//! `bench/compare.sh` and `bench/soak.sh` run end to end (shortened) against real etcd 3.5.1
//! and oxcd, so the README's benchmark commands keep working.

use std::process::{Command, Output};

/// Runs a bench script with the binaries under test; panics with its output if it fails.
fn run_script(script: &str, args: &[&str]) -> String {
    let bench_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out: Output = Command::new("bash")
        .arg(bench_dir.join(script))
        .args(args)
        .env("OXCD_BIN", oxcd_e2e::bins::oxcd())
        .env("BENCH_BIN", env!("CARGO_BIN_EXE_oxcd-bench"))
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The table cell under `column` (0-based) of the row starting with `| row`.
fn cell<'a>(table: &'a str, row: &str, column: usize) -> &'a str {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("| {row}")))
        .unwrap_or_else(|| panic!("no row {row:?} in:\n{table}"));
    line.split('|').map(str::trim).nth(column + 1).unwrap_or("")
}

#[test]
fn compare_fills_every_cell_for_both_servers() {
    let table = run_script("compare.sh", &["--quick"]);
    let workloads = [
        "put 1 client",
        "put 100 clients",
        "range linearizable",
        "range serializable",
        "txn-mixed 90/10",
        "watch 1 put -> 1000 watchers",
        "lease keep-alive",
    ];
    for row in workloads {
        for (column, what) in
            [(1, "etcd req/s"), (2, "oxcd req/s"), (6, "etcd CPU"), (7, "oxcd CPU")]
        {
            let value = cell(&table, row, column);
            assert!(value.starts_with(|c: char| c.is_ascii_digit()), "{row} / {what}: {value:?}");
            assert!(!value.contains("err"), "{row} / {what}: {value:?}");
        }
    }
    assert!(cell(&table, "peak RSS", 2).ends_with("MiB"), "{table}");
}

#[test]
fn soak_samples_both_servers() {
    let out = run_script(
        "soak.sh",
        &["--seconds", "6", "--interval", "2", "--rate", "200", "--only", "both"],
    );
    for server in ["etcd", "oxcd"] {
        assert!(out.contains(&format!("{server}: peak RSS first half")), "{out}");
    }
    // oxcd's rows carry the storage gauges: six numbers per sample.
    let oxcd = out.split("== oxcd").nth(1).unwrap_or_default();
    let sample = oxcd.lines().find(|l| l.trim_start().starts_with('2')).unwrap_or_default();
    assert_eq!(sample.split_whitespace().count(), 7, "{out}");
}
