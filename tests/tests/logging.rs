//! etcd's logging flags through the binary: `--logger zap` writes JSON lines with `level`,
//! `ts`, `caller` and `msg` (checked on etcd 3.5.1 and oxcd alike), `--log-outputs` sends
//! them to a file, `--log-level` filters, and the default stays human-readable.

use std::time::{Duration, Instant};

use oxcd_e2e::{CtlVersion, Kind, Member, MemberConfig};

/// The JSON objects among `text`'s lines; panics on a line that is not one.
fn json_lines(text: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => panic!("not a JSON object line: {l}"),
        })
        .collect()
}

/// Waits (bounded) until `path` holds at least one full line, and returns its text.
fn wait_for_lines(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.ends_with('\n') && !text.trim().is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "nothing logged to {}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn zap_logger_writes_etcds_json_lines_to_a_file() {
    let ts_shape = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    let caller_shape = regex::Regex::new(r"^[\w./-]+:\d+$").unwrap();
    for kind in [Kind::Etcd35, Kind::Oxcd] {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("member.log");
        let cfg = MemberConfig::new(kind)
            .arg("--logger=zap")
            .arg(format!("--log-outputs={}", path.display()));
        let member = Member::start_with(cfg);
        member.ctl(CtlVersion::V35).run(&["put", "k", "v"]).assert_success();
        let lines = json_lines(&wait_for_lines(&path));
        for line in &lines {
            for key in ["level", "ts", "caller", "msg"] {
                assert!(line.contains_key(key), "{kind}: no {key} in {line:?}");
            }
            let level = line["level"].as_str().unwrap_or("");
            assert!(["debug", "info", "warn", "error"].contains(&level), "{kind}: {line:?}");
            let ts = line["ts"].as_str().unwrap_or("");
            assert!(ts_shape.is_match(ts), "{kind}: ts {ts:?}");
            let caller = line["caller"].as_str().unwrap_or("");
            assert!(caller_shape.is_match(caller), "{kind}: caller {caller:?}");
        }
        assert!(lines.iter().any(|l| l["level"] == "info"), "{kind}: no info line");
    }
}

#[test]
fn log_level_warn_leaves_info_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("member.log");
    let cfg = MemberConfig::new(Kind::Oxcd)
        .arg("--logger=zap")
        .arg("--log-level=warn")
        .arg(format!("--log-outputs={}", path.display()));
    let member = Member::start_with(cfg);
    member.ctl(CtlVersion::V35).run(&["put", "k", "v"]).assert_success();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let lines = json_lines(&text);
    assert!(lines.iter().all(|l| l["level"] != "info"), "{text}");
}

#[test]
fn human_readable_by_default() {
    let member = Member::start(Kind::Oxcd);
    member.ctl(CtlVersion::V35).run(&["put", "k", "v"]).assert_success();
    let tail = member.log_tail(20);
    assert!(tail.lines().any(|l| l.contains("INFO")), "no human-readable line:\n{tail}");
    assert!(tail.lines().all(|l| !l.starts_with('{')), "JSON without --logger zap:\n{tail}");
}

#[test]
fn unknown_logger_is_refused() {
    let out = std::process::Command::new(oxcd_e2e::bins::oxcd())
        .arg("--logger=capnslogx")
        .output()
        .expect("run oxcd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown logger option"), "{err}");
}
