//! The `/v3/` JSON gateway, differentially: the same HTTP requests (curl) against etcd 3.5.1
//! and oxcd, answers compared byte for byte after masking what legitimately differs (cluster
//! and member ids, raft term, auth tokens, the remaining TTL of a lease). Also a streamed
//! watch, a lease keep-alive, and etcd 3.4's `/v3beta/` prefix against etcd 3.4.23.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oxcd_e2e::{Kind, Member};
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

/// A watch stream: its created line, then the event of a put made after it (read as the
/// stream delivers them: the stream itself never ends).
fn watch(base: &str) -> Vec<String> {
    let mut child = curl(
        &format!("{base}/v3/watch"),
        r#"{"create_request":{"key":"d2F0Y2hlZA==","prev_kv":true}}"#,
        None,
    )
    .arg("-N")
    .stdout(Stdio::piped())
    .spawn()
    .expect("run curl");
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
    let next = |rx: &mpsc::Receiver<String>| {
        rx.recv_timeout(Duration::from_secs(15)).unwrap_or_else(|_| "<nothing>".into())
    };
    out.push(format!("watch created -> {}", mask(&next(&rx))));
    for value in ["djE=", "djI="] {
        let put = curl(
            &format!("{base}/v3/kv/put"),
            &format!(r#"{{"key":"d2F0Y2hlZA==","value":"{value}"}}"#),
            None,
        )
        .output()
        .expect("run curl");
        assert!(put.status.success(), "{put:?}");
        out.push(format!("watch event -> {}", mask(&next(&rx))));
    }
    let _ = child.kill();
    let _ = child.wait();
    out
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

#[test]
fn gateway_answers_as_etcd_does() {
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
