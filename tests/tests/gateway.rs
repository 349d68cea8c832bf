//! The `/v3/` JSON gateway, differentially: the same HTTP requests (curl) against etcd 3.5.1
//! and oxcd, answers compared byte for byte after masking what legitimately differs (cluster
//! and member ids, raft term, auth tokens, the remaining TTL of a lease). Also a streamed
//! watch, a lease keep-alive, and etcd 3.4's `/v3beta/` prefix against etcd 3.4.23.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oxcd_e2e::{Kind, Member, MemberConfig};
use regex::Regex;

/// One request: path, JSON body, and whether to send the token from the last authenticate.
struct Call {
    path: &'static str,
    body: &'static str,
    with_token: bool,
}

const fn call(path: &'static str, body: &'static str) -> Call {
    Call { path, body, with_token: false }
}

const fn authed(path: &'static str, body: &'static str) -> Call {
    Call { path, body, with_token: true }
}

/// foo=bar, foo1=bar1 are base64 Zm9v/YmFy, Zm9vMQ==/YmFyMQ==; "fop" is Zm9w.
const SCRIPT: &[Call] = &[
    call("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
    call("/v3/kv/put", r#"{"key":"Zm9vMQ==","value":"YmFyMQ==","prev_kv":true}"#),
    call("/v3/kv/put", r#"{"key":"Zm9vMQ==","value":"YmF6","prev_kv":true}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","range_end":"Zm9w","sort_order":"DESCEND"}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","range_end":"Zm9w","count_only":true}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","range_end":"Zm9w","limit":"1","keys_only":true}"#),
    call("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#),
    call("/v3/kv/range", r#"{}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","revision":"99"}"#),
    call("/v3/kv/range", r#"{"key":"!!not base64"}"#),
    call("/v3/kv/range", r#"not json"#),
    call("/v3/kv/range", r#"{"key":"Zm9v"#),
    call("/v3/kv/range", r#"{"key":5}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v==","limit":"1"}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","limit":"x"}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","serializable":"yes"}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","unknown_field":1} trailing"#),
    call("/v3/kv/put", r#"{"key":"","value":"YmFy"}"#),
    call(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],
            "success":[{"request_put":{"key":"Zm9v","value":"YmF6"}},
                       {"request_range":{"key":"Zm9v"}}],
            "failure":[{"request_range":{"key":"Zm9v"}}]}"#,
    ),
    call(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","target":"VERSION","result":"GREATER","version":"5"}],
            "failure":[{"request_delete_range":{"key":"Zm9vMQ==","prev_kv":true}}]}"#,
    ),
    call("/v3/kv/deleterange", r#"{"key":"Zm9v","range_end":"Zm9w","prev_kv":true}"#),
    call("/v3/kv/deleterange", r#"{"key":"Zm9v"}"#),
    call("/v3/lease/grant", r#"{"TTL":"60","ID":"4660"}"#),
    call("/v3/lease/grant", r#"{"TTL":"60","ID":"4660"}"#),
    call("/v3/kv/put", r#"{"key":"bGVhc2Vk","value":"dg==","lease":"4660"}"#),
    call("/v3/lease/timetolive", r#"{"ID":"4660","keys":true}"#),
    call("/v3/kv/lease/timetolive", r#"{"ID":"4660"}"#),
    call("/v3/lease/leases", r#"{}"#),
    call("/v3/lease/keepalive", r#"{"ID":"4660"}"#),
    call("/v3/lease/revoke", r#"{"ID":"4660"}"#),
    call("/v3/lease/revoke", r#"{"ID":"4660"}"#),
    call("/v3/kv/compaction", r#"{"revision":"3"}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#),
    call("/v3/auth/role/add", r#"{"name":"root"}"#),
    call("/v3/auth/role/add", r#"{"name":"r"}"#),
    call(
        "/v3/auth/role/grant",
        r#"{"name":"r","perm":{"permType":"READWRITE","key":"Zm9v","range_end":"Zm9w"}}"#,
    ),
    call("/v3/auth/role/get", r#"{"role":"r"}"#),
    call("/v3/auth/user/add", r#"{"name":"root","password":"123"}"#),
    call("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
    call("/v3/auth/user/add", r#"{"name":"u","password":"pw"}"#),
    call("/v3/auth/user/grant", r#"{"user":"u","role":"r"}"#),
    call("/v3/auth/user/get", r#"{"name":"root"}"#),
    call("/v3/auth/user/list", r#"{}"#),
    call("/v3/auth/role/list", r#"{}"#),
    call("/v3/auth/enable", r#"{}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    call("/v3/auth/authenticate", r#"{"name":"root","password":"bad"}"#),
    call("/v3/auth/authenticate", r#"{"name":"u","password":"pw"}"#),
    authed("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
    authed("/v3/kv/put", r#"{"key":"YQ==","value":"YmFy"}"#),
    authed("/v3/auth/user/list", r#"{}"#),
    call("/v3/auth/authenticate", r#"{"name":"root","password":"123"}"#),
    authed("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    authed("/v3/auth/status", r#"{}"#),
    call("/v3/auth/status", r#"{}"#),
    authed("/v3/auth/disable", r#"{}"#),
    call("/v3/kv/range", r#"{"key":"Zm9v","keys_only":true}"#),
    call("/v3/maintenance/status", r#"{}"#),
    call("/v3/maintenance/alarm", r#"{"action":"GET"}"#),
    call("/v3/maintenance/defragment", r#"{}"#),
    call("/v3/maintenance/hash", r#"{}"#),
    call("/v3/maintenance/hashkv", r#"{"revision":"0"}"#),
    call("/v3/cluster/member/list", r#"{}"#),
    call("/v3/cluster/member/remove", r#"{"ID":"1234"}"#),
    call("/v3/cluster/member/update", r#"{"ID":"1234","peerURLs":["http://127.0.0.1:1"]}"#),
    call("/v3/cluster/member/promote", r#"{"ID":"1234"}"#),
    call("/v3/no/such/path", r#"{}"#),
];

/// `curl` POSTing `body` to `url`, with a token.
fn curl(url: &str, body: &str, token: Option<&str>) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-X", "POST", "-d", body]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: {token}")]);
    }
    cmd.arg(url);
    cmd
}

/// Runs the script against a fresh member of `kind`; one line per call: status and body.
fn transcript(kind: Kind) -> Vec<String> {
    let member = Member::start(kind);
    let base = member.client_url();
    let token_re = Regex::new(r#""token":"([^"]*)""#).unwrap();
    let mut token = String::new();
    let mut lines = Vec::new();
    for c in SCRIPT {
        let mut cmd = curl(&format!("{base}{}", c.path), c.body, c.with_token.then_some(&*token));
        cmd.args(["-w", "\n%{http_code}"]);
        let out = cmd.output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or((&text, "?"));
        if let Some(t) = token_re.captures(body) {
            token = t[1].to_string();
        }
        let sent: String = c.body.split_whitespace().collect();
        lines.push(format!("{} {sent} -> {status} {}", c.path, mask(body)));
    }
    lines.extend(watch(&base));
    lines
}

/// A watch stream: its created line, then the event of each put made after it (read as the
/// stream delivers them: the stream itself never ends).
fn watch(base: &str) -> Vec<String> {
    let values = ["djE=", "djI="];
    let lines = stream_lines(
        &format!("{base}/v3/watch"),
        r#"{"create_request":{"key":"d2F0Y2hlZA==","prev_kv":true}}"#,
        1 + values.len(),
        |i| {
            if i > 0 {
                let body = format!(r#"{{"key":"d2F0Y2hlZA==","value":"{}"}}"#, values[i - 1]);
                let put = curl(&format!("{base}/v3/kv/put"), &body, None).output().expect("curl");
                assert!(put.status.success(), "{put:?}");
            }
        },
    );
    let what = |i: usize| if i == 0 { "watch created" } else { "watch event" };
    lines.iter().enumerate().map(|(i, l)| format!("{} -> {}", what(i), mask(l))).collect()
}

/// Masks ids, terms, tokens, versions, sizes, and the remaining TTL of a lease.
fn mask(body: &str) -> String {
    let ids = Regex::new(
        r#""(cluster_id|member_id|raft_term|leader|raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse|version)":"[^"]*""#,
    )
    .unwrap();
    let token = Regex::new(r#""token":"[^"]*""#).unwrap();
    let ttl = Regex::new(r#""TTL":"(\d+)""#).unwrap();
    let s = ids.replace_all(body, "\"$1\":\"<X>\"");
    let member_ids = Regex::new(r#""ID":"\d{6,}""#).unwrap();
    let s = member_ids.replace_all(&s, "\"ID\":\"<ID>\"");
    let hashes = Regex::new(r#""hash":\d+"#).unwrap();
    let s = hashes.replace_all(&s, "\"hash\":<HASH>");
    let urls = Regex::new(r"http://127\.0\.0\.1:\d+").unwrap();
    let s = urls.replace_all(&s, "<URL>");
    let s = token.replace_all(&s, "\"token\":\"<TOKEN>\"");
    ttl.replace_all(&s, |c: &regex::Captures| {
        // A granted or kept-alive TTL is 60; what remains of it depends on timing.
        if &c[1] == "60" {
            c[0].to_string()
        } else {
            "\"TTL\":\"<REMAINING>\"".into()
        }
    })
    .into_owned()
}

/// Runs `transcript` against etcd 3.5.1 and oxcd and fails listing every line that differs.
fn assert_same_as_etcd(transcript: fn(Kind) -> Vec<String>) {
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd35, transcript);
    assert_eq!(reference.len(), subject.len());
    let mut report = String::new();
    for (r, o) in reference.iter().zip(&subject) {
        if r != o {
            report.push_str(&format!("etcd: {r}\noxcd: {o}\n\n"));
        }
    }
    assert!(report.is_empty(), "gateway answers differ:\n{report}");
}

#[test]
fn gateway_answers_as_etcd_does() {
    assert_same_as_etcd(transcript);
}

/// etcd 3.4's `/v3beta/` prefix answers as `/v3/` does.
#[test]
fn v3beta_prefix_as_etcd_34() {
    let run = |kind: Kind| {
        let member = Member::start(kind);
        let base = member.client_url();
        let put = curl(&format!("{base}/v3beta/kv/put"), r#"{"key":"YQ==","value":"Yg=="}"#, None)
            .output()
            .expect("curl");
        let get = curl(&format!("{base}/v3beta/kv/range"), r#"{"key":"YQ=="}"#, None)
            .output()
            .expect("curl");
        [put, get].map(|o| mask(&String::from_utf8_lossy(&o.stdout)))
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd34, run);
    assert_eq!(reference, subject);
}

/// Both servers list members by their random IDs; order them by name (the learner has none) so
/// two runs compare.
fn members_in_stable_order(body: &str) -> String {
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    if let Some(members) = json.get_mut("members").and_then(|m| m.as_array_mut()) {
        members.sort_by_key(|m| m.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string());
    }
    json.to_string()
}

/// `/v3/cluster/member/add` (a learner that never starts) then `remove` of the id it got, as
/// etcd 3.5.1 answers them.
#[test]
fn member_add_and_remove_as_etcd() {
    let run = |kind: Kind| {
        let member = Member::start(kind);
        let base = member.client_url();
        let add = curl(
            &format!("{base}/v3/cluster/member/add"),
            r#"{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}"#,
            None,
        )
        .output()
        .expect("curl");
        let added = String::from_utf8_lossy(&add.stdout).to_string();
        let id = Regex::new(r#""member":\{"ID":"(\d+)""#)
            .unwrap()
            .captures(&added)
            .map(|c| c[1].to_string())
            .unwrap_or_default();
        let remove =
            curl(&format!("{base}/v3/cluster/member/remove"), &format!(r#"{{"ID":"{id}"}}"#), None)
                .output()
                .expect("curl");
        [added, String::from_utf8_lossy(&remove.stdout).to_string()]
            .map(|s| mask(&members_in_stable_order(&s)))
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd35, run);
    assert_eq!(reference, subject);
}

/// The v3lock and v3election gateways. The lease has a fixed ID (0x1234), so the keys a lock
/// and a campaign make (`<name>/1234`) and their revisions compare (the campaign's key is
/// created at revision 6). An empty name locks under "/" ("/1234" is LzEyMzQ=); the
/// services' errors are code Unknown (2), as etcd's servers pass clientv3's errors on.
/// "mylock" is bXlsb2Nr,
/// "mylock/1234" bXlsb2NrLzEyMzQ=, "election" ZWxlY3Rpb24=, "election/1234"
/// ZWxlY3Rpb24vMTIzNA==.
const CONCURRENCY: &[Call] = &[
    call("/v3/lease/grant", r#"{"TTL":"60","ID":"4660"}"#),
    call("/v3/lock/lock", r#"{"name":"bXlsb2Nr","lease":"4660"}"#),
    call("/v3/kv/range", r#"{"key":"bXlsb2Nr","range_end":"bXlsb2Ns","keys_only":true}"#),
    call("/v3/lock/unlock", r#"{"key":"bXlsb2NrLzEyMzQ="}"#),
    call("/v3/lock/unlock", r#"{"key":"bXlsb2NrLzEyMzQ="}"#),
    call("/v3/lock/lock", r#"{"name":"bXlsb2Nr","lease":"999"}"#),
    call("/v3/lock/lock", r#"{"lease":"4660"}"#),
    call("/v3/lock/unlock", r#"{"key":"LzEyMzQ="}"#),
    call("/v3/election/leader", r#"{"name":"ZWxlY3Rpb24="}"#),
    call("/v3/election/campaign", r#"{"name":"ZWxlY3Rpb24=","lease":"4660","value":"djE="}"#),
    call("/v3/election/leader", r#"{"name":"ZWxlY3Rpb24="}"#),
    call(
        "/v3/election/proclaim",
        r#"{"leader":{"name":"ZWxlY3Rpb24=","key":"ZWxlY3Rpb24vMTIzNA==","rev":"6","lease":"4660"},"value":"djI="}"#,
    ),
    call("/v3/election/leader", r#"{"name":"ZWxlY3Rpb24="}"#),
    call(
        "/v3/election/proclaim",
        r#"{"leader":{"name":"ZWxlY3Rpb24=","key":"ZWxlY3Rpb24vMTIzNA==","rev":"3","lease":"4660"},"value":"djM="}"#,
    ),
    call("/v3/election/proclaim", r#"{"value":"djM="}"#),
    call(
        "/v3/election/resign",
        r#"{"leader":{"name":"ZWxlY3Rpb24=","key":"ZWxlY3Rpb24vMTIzNA==","rev":"6","lease":"4660"}}"#,
    ),
    call("/v3/election/leader", r#"{"name":"ZWxlY3Rpb24="}"#),
    call(
        "/v3/election/resign",
        r#"{"leader":{"name":"ZWxlY3Rpb24=","key":"ZWxlY3Rpb24vMTIzNA==","rev":"6","lease":"4660"}}"#,
    ),
];

/// Runs `calls` against `base`; one line per call: path, body sent, status and masked answer.
fn run_script(base: &str, calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            let mut cmd = curl(&format!("{base}{}", c.path), c.body, None);
            cmd.args(["-w", "\n%{http_code}"]);
            let out = cmd.output().expect("run curl");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let (body, status) = text.rsplit_once('\n').unwrap_or((&text, "?"));
            let sent: String = c.body.split_whitespace().collect();
            format!("{} {sent} -> {status} {}", c.path, mask(body))
        })
        .collect()
}

/// The first `n` lines a streaming gateway call answers, then the call is dropped.
fn stream_lines(url: &str, body: &str, n: usize, between: impl Fn(usize)) -> Vec<String> {
    let mut child =
        curl(url, body, None).arg("-N").stdout(Stdio::piped()).spawn().expect("run curl");
    let stdout = child.stdout.take().expect("curl stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    for i in 0..n {
        between(i);
        out.push(rx.recv_timeout(Duration::from_secs(15)).unwrap_or_else(|_| "<nothing>".into()));
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

/// Lock and election through the gateway, then `/v3/election/observe` (the leader, then a
/// proclaimed value) — "obs" is b2Jz, "obs/1235" b2JzLzEyMzU=.
fn concurrency_transcript(kind: Kind) -> Vec<String> {
    let member = Member::start(kind);
    let base = member.client_url();
    let mut lines = run_script(&base, CONCURRENCY);
    let setup = [
        call("/v3/lease/grant", r#"{"TTL":"60","ID":"4661"}"#),
        call("/v3/election/campaign", r#"{"name":"b2Jz","lease":"4661","value":"djE="}"#),
    ];
    let campaigned = run_script(&base, &setup);
    let rev = Regex::new(r#""rev":"(\d+)""#)
        .unwrap()
        .captures(&campaigned[1])
        .map(|c| c[1].to_string())
        .unwrap_or_default();
    lines.extend(campaigned);
    let proclaim = format!(
        r#"{{"leader":{{"name":"b2Jz","key":"b2JzLzEyMzU=","rev":"{rev}","lease":"4661"}},"value":"djI="}}"#
    );
    let observed =
        stream_lines(&format!("{base}/v3/election/observe"), r#"{"name":"b2Jz"}"#, 2, |i| {
            if i == 1 {
                let out = curl(&format!("{base}/v3/election/proclaim"), &proclaim, None)
                    .output()
                    .expect("curl");
                assert!(out.status.success(), "{out:?}");
            }
        });
    lines.extend(observed.iter().map(|l| format!("observe -> {}", mask(l))));
    lines
}

#[test]
fn lock_and_election_gateways_answer_as_etcd_does() {
    assert_same_as_etcd(concurrency_transcript);
}

/// `/v3/maintenance/snapshot` streams the snapshot in base64 chunks; the joined chunks are a
/// snapshot file etcdutl reads, with the member's revision, from etcd and from oxcd alike.
#[test]
fn snapshot_streams_through_the_gateway_as_etcd_does() {
    let run = |kind: Kind| {
        let member = Member::start(kind);
        let base = member.client_url();
        for i in 0..50 {
            let put = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(&format!("k{i}")), b64("v"));
            assert!(curl(&format!("{base}/v3/kv/put"), &put, None)
                .output()
                .unwrap()
                .status
                .success());
        }
        let out =
            curl(&format!("{base}/v3/maintenance/snapshot"), "{}", None).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut file = Vec::new();
        let mut last_remaining = None;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let result = &v["result"];
            assert!(result.is_object(), "not a result line: {line}");
            let blob = result["blob"].as_str().unwrap_or_default();
            file.extend(base64_decode(blob));
            last_remaining = Some(result.get("remaining_bytes").cloned());
        }
        assert_eq!(last_remaining, Some(None), "the last chunk has no remaining bytes");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.db");
        std::fs::write(&path, &file).unwrap();
        let status = Command::new(oxcd_e2e::bins::etcdutl35())
            .args(["snapshot", "status", "-w", "json"])
            .arg(&path)
            .output()
            .expect("run etcdutl");
        assert!(status.status.success(), "etcdutl: {status:?}");
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        status["revision"].clone()
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd35, run);
    assert_eq!(reference, subject);
    assert_eq!(subject, serde_json::json!(51));
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64 blob")
}

/// etcd's access controller on the client port's HTTP endpoints: CORS headers for any origin
/// by default, `OPTIONS` answered 200 on any path, a host outside `--host-whitelist` refused
/// with 421 on plain HTTP, `--cors` naming the origins that get the headers.
#[test]
fn cors_and_host_whitelist_as_etcd() {
    let run = |kind: Kind| {
        let mut out = Vec::new();
        let head = |args: &[&str]| {
            let o = Command::new("curl")
                .args(["-sS", "-i", "--max-time", "20"])
                .args(args)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let mut lines: Vec<String> = text
                .lines()
                // Header names compare without case (hyper writes them in lower case).
                .map(|l| match l.trim_end().split_once(": ") {
                    Some((name, value)) => format!("{}: {value}", name.to_ascii_lowercase()),
                    None => l.trim_end().to_string(),
                })
                .filter(|l| {
                    ["HTTP/", "access-control", "grpc-metadata"].iter().any(|p| l.starts_with(p))
                })
                .collect();
            lines.sort();
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            if body.contains("Host header was unrecognized") {
                lines.push(body);
            }
            lines
        };
        let member = Member::start(kind);
        let base = member.client_url();
        out.push(head(&[&format!("{base}/health")]));
        out.push(head(&["-X", "OPTIONS", "-H", "Origin: x", &format!("{base}/v3/kv/range")]));
        out.push(head(&["-X", "POST", "-d", "{}", &format!("{base}/v3/maintenance/status")]));
        drop(member);
        let mut cfg = MemberConfig::new(kind);
        cfg.extra_args = vec![
            "--host-whitelist=example.com,127.0.0.1".into(),
            "--cors=http://a.example:80".into(),
        ];
        let member = Member::start_with(cfg);
        let base = member.client_url();
        out.push(head(&[&format!("{base}/health")]));
        out.push(head(&["-H", "Host: evil.com:2379", &format!("{base}/health")]));
        out.push(head(&["-H", "Origin: http://a.example:80", &format!("{base}/version")]));
        out.push(head(&["-H", "Origin: http://b.example:80", &format!("{base}/version")]));
        out
    };
    let (reference, subject) = oxcd_e2e::against_both(Kind::Etcd35, run);
    assert_eq!(reference, subject);
}
