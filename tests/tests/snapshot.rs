//! `oxcd snapshot save|status|restore` against real etcd, both directions, with data large
//! enough to need every part of bbolt's format (branch pages, overflow pages, inline
//! buckets): thousands of keys, values of hundreds of KiB, keys of several KiB, multi-op
//! transactions (sub-revisions), deletions, leases and a compaction.
//!
//! - etcd 3.5.1 / 3.4.23 / 3.6 snapshot → `oxcd snapshot restore` → oxcd serves what etcd served:
//!   `get --prefix -w json` (every key, create/mod revision, version, lease, value) and the
//!   header revision identical, history reads and the compaction point identical, leases
//!   with their granted TTL and keys.
//! - oxcd snapshot (`oxcd snapshot save` and `etcdctl snapshot save`) → `etcdutl snapshot
//!   restore` → etcd 3.5.1 serves what oxcd served; and back into oxcd.
//! - `oxcd snapshot status` prints exactly what `etcdutl snapshot status` prints for the same
//!   file (etcd's and oxcd's), in every `-w` format.
//! - damaged, truncated, hashless and foreign files fail with a clear error and leave no
//!   data dir; a copied `member/snap/db` restores with `--skip-hash-check`.
//! - one snapshot restored into three members forms a three-member oxcd cluster.
//! - auth data survives etcd → oxcd → etcd.
//! - a restored lease is live: oxcd's leader revokes it (and its keys) once its TTL runs out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, PutOptions, Txn, TxnOp};
use oxcd_e2e::bins;
use oxcd_e2e::client::connect;
use oxcd_e2e::etcdctl::run_command;
use oxcd_e2e::{Cluster, CtlOutput, CtlVersion, Etcdctl, Kind, Member, MemberConfig};
use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

/// Runs `oxcd args...` (the tools, not a member).
fn oxcd(args: &[&str]) -> CtlOutput {
    let bin = bins::oxcd();
    let mut cmd = Command::new(&bin);
    cmd.args(args);
    run_command(cmd, format!("oxcd {}", args.join(" ")), None, Duration::from_secs(300))
}

/// Runs etcdutl 3.5.1.
fn etcdutl(args: &[&str]) -> CtlOutput {
    let bin = bins::etcdutl35();
    let mut cmd = Command::new(&bin);
    cmd.args(args);
    run_command(cmd, format!("etcdutl {}", args.join(" ")), None, Duration::from_secs(300))
}

/// What the load wrote that the checks need.
struct Loaded {
    /// Revision compacted at.
    compacted: i64,
    /// Leases granted (id, granted TTL).
    leases: Vec<(i64, i64)>,
}

/// Fills a member with data that needs branch, overflow and inline pages, history,
/// tombstones, sub-revisions, leases and a compaction.
async fn load(url: &str) -> Loaded {
    let mut c: Client = connect(url).await;
    // 3,000 small keys in transactions of 100 puts (sub-revisions 0..99).
    for chunk in 0..30 {
        let ops: Vec<TxnOp> = (0..100)
            .map(|i| {
                let n = chunk * 100 + i;
                TxnOp::put(format!("small/{n:05}"), format!("value-{n}"), None)
            })
            .collect();
        c.txn(Txn::new().and_then(ops)).await.expect("txn");
    }
    // History: 500 overwrites, then some deletions (tombstones, one delete-range).
    for n in 0..500 {
        c.put(format!("small/{:05}", n * 3), format!("second-{n}"), None).await.expect("put");
    }
    for n in 0..100 {
        c.delete(format!("small/{:05}", n * 7 + 1), None).await.expect("delete");
    }
    c.delete("small/029", Some(DeleteOptions::new().with_prefix())).await.expect("delete range");
    // Values of hundreds of KiB (overflow pages).
    for n in 0..12u8 {
        let value = vec![b'a' + n; 250 * 1024 + usize::from(n) * 1000];
        c.put(format!("big/{n:02}"), value, None).await.expect("big put");
    }
    // Keys of several KiB.
    for n in 0..40usize {
        let key = format!("long/{}/{n:03}", "k".repeat(3000 + n * 50));
        c.put(key, format!("long-{n}"), None).await.expect("long put");
    }
    // A transaction mixing a compare, puts and a delete.
    let txn = Txn::new()
        .when(vec![Compare::version("small/00000", CompareOp::Greater, 0)])
        .and_then(vec![
            TxnOp::put("txn/a", "1", None),
            TxnOp::put("txn/b", "2", None),
            TxnOp::delete("small/00002", None),
        ]);
    c.txn(txn).await.expect("txn");
    let compacted = c.put("mark", "before-compaction", None).await.expect("put");
    let compacted = compacted.header().expect("header").revision();
    // More history after the compaction point.
    for n in 0..200 {
        c.put(format!("small/{:05}", n * 11), format!("third-{n}"), None).await.expect("put");
    }
    c.compact(compacted, None).await.expect("compact");
    // Leases: with keys, with none; TTLs the restored side must keep.
    let mut leases = Vec::new();
    for (i, ttl) in [600i64, 1200, 1800].into_iter().enumerate() {
        let id = c.lease_grant(ttl, None).await.expect("grant").id();
        leases.push((id, ttl));
        for k in 0..i * 3 {
            let opts = PutOptions::new().with_lease(id);
            c.put(format!("leased/{i}/{k}"), "v", Some(opts)).await.expect("leased put");
        }
    }
    c.put("last", "after everything", None).await.expect("put");
    Loaded { compacted, leases }
}

/// History reads around the compaction point, as text.
fn history(ctl: &Etcdctl, loaded: &Loaded) -> Vec<String> {
    let c = loaded.compacted;
    let mut out = Vec::new();
    for args in [
        vec!["get".to_string(), "small/00000".into(), format!("--rev={}", c - 1)],
        vec!["get".into(), "small/00000".into(), format!("--rev={c}"), "-w".into(), "json".into()],
        vec![
            "get".into(),
            "small/00011".into(),
            format!("--rev={}", c + 2),
            "-w".into(),
            "json".into(),
        ],
        vec![
            "get".into(),
            "small/0000".into(),
            "--prefix".into(),
            "--keys-only".into(),
            format!("--rev={}", c + 50),
        ],
        vec!["get".into(), "small/00001".into(), format!("--rev={c}")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = ctl.run(&args);
        // Headers carry the cluster's ids and raft term, which are new after a restore.
        let stdout = strip_header(&r.stdout);
        // etcdctl's retry warnings carry times and ports; its error line is what counts.
        let err: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("Error:")).collect();
        out.push(format!("{} → {} {stdout} {err:?}", args.join(" "), r.status_text()));
    }
    out
}

fn strip_header(stdout: &str) -> String {
    match serde_json::from_str::<Value>(stdout) {
        Ok(mut v) => {
            if let Some(h) = v.get_mut("header") {
                *h = serde_json::json!({ "revision": h["revision"] });
            }
            v.to_string()
        }
        Err(_) => stdout.to_string(),
    }
}

/// Lease ids, granted TTLs and keys, with the remaining TTL checked to be plausible.
fn leases(ctl: &Etcdctl, loaded: &Loaded) -> Vec<String> {
    let mut out = Vec::new();
    for (id, granted) in &loaded.leases {
        let hex = format!("{id:x}");
        let r = ctl.run(&["lease", "timetolive", &hex, "--keys", "-w", "json"]);
        assert!(r.success(), "{r}");
        let v: Value = serde_json::from_str(&r.stdout).expect("json");
        assert_eq!(v["granted-ttl"].as_i64(), Some(*granted), "{r}");
        let ttl = v["ttl"].as_i64().expect("ttl");
        assert!(ttl > granted - 300 && ttl <= *granted, "remaining TTL {ttl} of {granted}");
        let mut keys: Vec<String> = v["keys"]
            .as_array()
            .map(|a| a.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        keys.sort();
        out.push(format!("{hex} granted {granted} keys {keys:?}"));
    }
    out
}

/// Asserts the member behind `subject` serves what `reference` served.
fn assert_same_data(what: &str, reference: &Etcdctl, subject: &Etcdctl, loaded: &Loaded) {
    let (rev_a, kvs_a) = reference.everything();
    let (rev_b, kvs_b) = subject.everything();
    assert_eq!(rev_a, rev_b, "{what}: header revision");
    let n = kvs_a.as_array().map(Vec::len).unwrap_or(0);
    assert!(n > 2500, "{what}: the load left {n} keys");
    if kvs_a != kvs_b {
        let a = kvs_a.as_array().cloned().unwrap_or_default();
        let b = kvs_b.as_array().cloned().unwrap_or_default();
        let first = a.iter().zip(&b).position(|(x, y)| x != y);
        panic!(
            "{what}: kvs differ ({} vs {} keys); first difference at {first:?}: {:?} vs {:?}",
            a.len(),
            b.len(),
            first.map(|i| a[i].to_string().chars().take(300).collect::<String>()),
            first.map(|i| b[i].to_string().chars().take(300).collect::<String>()),
        );
    }
    assert_eq!(history(reference, loaded), history(subject, loaded), "{what}: history");
    assert_eq!(leases(reference, loaded), leases(subject, loaded), "{what}: leases");
}

/// Restores `file` with `oxcd snapshot restore` into a new single oxcd member and starts it.
fn restore_into_oxcd(file: &Path, extra: &[&str]) -> (Member, Duration) {
    let mut m = Member::create(MemberConfig::new(Kind::Oxcd));
    let data_dir = m.data_dir().display().to_string();
    let initial = m.initial_cluster().to_string();
    let peer = m.peer_url();
    let file = file.display().to_string();
    let mut args = vec![
        "snapshot",
        "restore",
        &file,
        "--data-dir",
        &data_dir,
        "--name=n1",
        "--initial-cluster",
        &initial,
        "--initial-cluster-token=oxcd-e2e",
        "--initial-advertise-peer-urls",
        &peer,
    ];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = oxcd(&args);
    let took = started.elapsed();
    assert!(out.success(), "{out}");
    eprintln!("{}", out.stderr.trim());
    m.launch().unwrap_or_else(|e| panic!("oxcd on the restored data dir: {e}"));
    (m, took)
}

/// Asserts `oxcd snapshot status` prints what etcdutl prints for `file`, in every format.
fn assert_same_status(file: &Path) {
    let f = file.display().to_string();
    for w in ["simple", "table", "json", "fields"] {
        let theirs = etcdutl(&["snapshot", "status", "-w", w, &f]);
        let ours = oxcd(&["snapshot", "status", "-w", w, &f]);
        assert!(theirs.success(), "{theirs}");
        assert_eq!(ours.stdout, theirs.stdout, "status -w {w} of {f}\n{ours}");
    }
}

fn from_etcd(kind: Kind, version: CtlVersion) {
    let source = Member::start(kind);
    let loaded = runtime().block_on(load(&source.client_url()));
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("etcd.db");
    let saved = source.ctl(version).run(&["snapshot", "save", &file.display().to_string()]);
    assert!(saved.success(), "{saved}");
    let size = std::fs::metadata(&file).expect("snapshot").len();
    assert_same_status(&file);

    let (restored, took) = restore_into_oxcd(&file, &[]);
    eprintln!("{kind} snapshot of {size} bytes restored into oxcd in {took:.2?}");
    assert_same_data(
        &format!("{kind} → oxcd"),
        &source.ctl(CtlVersion::V35),
        &restored.ctl(CtlVersion::V35),
        &loaded,
    );
    // The restored member is a working member: it takes writes at the next revision.
    let put = restored.ctl(CtlVersion::V35).run(&["put", "after", "restore", "-w", "json"]);
    let theirs = source.ctl(CtlVersion::V35).run(&["put", "after", "restore", "-w", "json"]);
    assert_eq!(strip_header(&put.stdout), strip_header(&theirs.stdout));
}

#[test]
fn etcd35_snapshot_restores_into_oxcd() {
    from_etcd(Kind::Etcd35, CtlVersion::V35);
}

#[test]
fn etcd36_snapshot_restores_into_oxcd() {
    from_etcd(Kind::Etcd36, CtlVersion::V35);
}

#[test]
fn etcd34_snapshot_restores_into_oxcd() {
    from_etcd(Kind::Etcd34, CtlVersion::V34);
}

#[test]
fn oxcd_snapshot_restores_into_etcd_and_oxcd() {
    let source = Member::start(Kind::Oxcd);
    let loaded = runtime().block_on(load(&source.client_url()));
    let dir = tempfile::tempdir().expect("tmp");
    // `oxcd snapshot save` and `etcdctl snapshot save` receive the same kind of file.
    let ours = dir.path().join("oxcd-save.db");
    let out = oxcd(&[
        "snapshot",
        "save",
        &ours.display().to_string(),
        "--endpoints",
        &source.client_addr(),
    ]);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, format!("Snapshot saved at {}\n", ours.display()));
    let theirs = dir.path().join("etcdctl-save.db");
    let out = source.ctl(CtlVersion::V35).run(&["snapshot", "save", &theirs.display().to_string()]);
    assert!(out.success(), "{out}");
    assert_same_status(&ours);
    assert_same_status(&theirs);
    eprintln!("oxcd snapshot: {} bytes", std::fs::metadata(&ours).expect("file").len());

    // etcdutl restores it and a real etcd 3.5.1 serves the same data.
    let mut etcd = Member::create(MemberConfig::new(Kind::Etcd35));
    let data_dir = etcd.data_dir().display().to_string();
    let initial = etcd.initial_cluster().to_string();
    let peer = etcd.peer_url();
    let out = etcdutl(&[
        "snapshot",
        "restore",
        &ours.display().to_string(),
        "--data-dir",
        &data_dir,
        "--name=n1",
        "--initial-cluster",
        &initial,
        "--initial-cluster-token=oxcd-e2e",
        "--initial-advertise-peer-urls",
        &peer,
    ]);
    assert!(out.success(), "{out}");
    etcd.launch().unwrap_or_else(|e| panic!("etcd on the restored data dir: {e}"));
    assert_same_data(
        "oxcd → etcd 3.5.1",
        &source.ctl(CtlVersion::V35),
        &etcd.ctl(CtlVersion::V35),
        &loaded,
    );

    // And oxcd restores its own snapshot.
    let (restored, _) = restore_into_oxcd(&theirs, &[]);
    assert_same_data(
        "oxcd → oxcd",
        &source.ctl(CtlVersion::V35),
        &restored.ctl(CtlVersion::V35),
        &loaded,
    );

    // `oxcd snapshot save` works against etcd too: etcdutl reads what it wrote.
    let from_etcd = dir.path().join("from-etcd.db");
    let out = oxcd(&[
        "snapshot",
        "save",
        &from_etcd.display().to_string(),
        "--endpoints",
        &etcd.client_url(),
    ]);
    assert!(out.success(), "{out}");
    assert_same_status(&from_etcd);
}

/// Exit code, and whether stderr says `expect`, for a restore that must fail; asserts it
/// left no data dir.
fn assert_restore_fails(file: &Path, extra: &[&str], expect: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let data_dir = dir.path().join("data");
    let mut args = vec!["snapshot", "restore"];
    let f = file.display().to_string();
    let d = data_dir.display().to_string();
    args.extend([f.as_str(), "--data-dir", d.as_str()]);
    args.extend_from_slice(extra);
    let out = oxcd(&args);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.starts_with("Error: ") && out.stderr.contains(expect), "{out}");
    assert!(!data_dir.exists(), "a failed restore left {}", data_dir.display());
}

#[test]
fn bad_files_get_clear_errors_and_no_data_dir() {
    let source = Member::start(Kind::Etcd35);
    let ctl = source.ctl(CtlVersion::V35);
    for i in 0..200 {
        ctl.run(&["put", &format!("key{i}"), &"v".repeat(i * 10)]).assert_success();
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("good.db");
    ctl.run(&["snapshot", "save", &file.display().to_string()]).assert_success();
    let bytes = std::fs::read(&file).expect("read");
    let write = |name: &str, b: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, b).expect("write");
        p
    };

    let mut flipped = bytes.clone();
    flipped[3 * 4096 + 100] ^= 0x40;
    assert_restore_fails(&write("flipped.db", &flipped), &[], "expected sha256");
    // Cut to a whole number of pages: no trailer.
    let cut = &bytes[..bytes.len() - 32 - 4096];
    assert_restore_fails(
        &write("cut.db", cut),
        &[],
        "snapshot missing hash but --skip-hash-check=false",
    );
    assert_restore_fails(&write("cut2.db", cut), &["--skip-hash-check"], "truncated");
    // A truncated file that still looks as if it had a trailer.
    assert_restore_fails(&write("half.db", &bytes[..8192 + 32]), &[], "expected sha256");
    assert_restore_fails(&write("empty.db", b""), &["--skip-hash-check"], "empty");
    assert_restore_fails(&write("text.db", &[b'x'; 4096 * 3]), &["--skip-hash-check"], "bbolt");
    assert_restore_fails(&dir.path().join("absent.db"), &[], "absent.db");
    assert_restore_fails(
        &file,
        &["--name=nobody", "--initial-cluster=n1=http://127.0.0.1:1"],
        "couldn't find local name \"nobody\"",
    );
    // etcdutl's status reports the same file as readable; ours too, and a damaged one fails.
    let out = oxcd(&["snapshot", "status", &write("cut3.db", cut).display().to_string()]);
    assert!(!out.success() && out.stderr.contains("truncated"), "{out}");

    // A data dir that is not empty is refused and left alone.
    let data = dir.path().join("used");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("keep"), b"x").expect("write");
    let f = file.display().to_string();
    let d = data.display().to_string();
    let out = oxcd(&["snapshot", "restore", &f, "--data-dir", &d]);
    assert!(out.stderr.contains("not empty"), "{out}");
    assert!(data.join("keep").exists());

    // A copied member/snap/db (no trailer) of a stopped etcd restores with --skip-hash-check.
    let mut source = source;
    let before = source.ctl(CtlVersion::V35).everything();
    source.stop();
    let copy = dir.path().join("copied.db");
    std::fs::copy(source.data_dir().join("member/snap/db"), &copy).expect("copy db");
    assert_restore_fails(&copy, &[], "snapshot missing hash");
    let (restored, _) = restore_into_oxcd(&copy, &["--skip-hash-check"]);
    assert_eq!(restored.ctl(CtlVersion::V35).everything(), before);
}

#[test]
fn one_snapshot_restores_a_three_member_cluster() {
    let source = Member::start(Kind::Etcd35);
    let ctl = source.ctl(CtlVersion::V35);
    for i in 0..50 {
        ctl.run(&["put", &format!("key{i}"), &format!("value{i}")]).assert_success();
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("snap.db");
    ctl.run(&["snapshot", "save", &file.display().to_string()]).assert_success();

    let mut cluster = Cluster::create(Kind::Oxcd, 3);
    for m in &cluster.members {
        let out = oxcd(&[
            "snapshot",
            "restore",
            &file.display().to_string(),
            "--data-dir",
            &m.data_dir().display().to_string(),
            "--name",
            m.name(),
            "--initial-cluster",
            m.initial_cluster(),
            "--initial-cluster-token=oxcd-e2e",
            "--initial-advertise-peer-urls",
            &m.peer_url(),
        ]);
        assert!(out.success(), "{out}");
    }
    cluster.launch().unwrap_or_else(|e| panic!("restored cluster: {e}"));
    let members = cluster.ctl(CtlVersion::V35).run(&["member", "list"]);
    assert!(members.success(), "{members}");
    assert_eq!(members.stdout.lines().count(), 3, "{members}");
    for m in &cluster.members {
        assert!(
            members.stdout.contains(&format!(", started, {}, {}", m.name(), m.peer_url())),
            "{members}"
        );
    }
    let expected = ctl.everything();
    for m in &cluster.members {
        let ctl = m.ctl(CtlVersion::V35);
        assert_eq!(ctl.clone().global_arg("--consistency=s").everything(), expected);
    }
    // The cluster replicates new writes.
    cluster.members[1].ctl(CtlVersion::V35).run(&["put", "new", "write"]).assert_success();
    let got = cluster.members[2].ctl(CtlVersion::V35).run(&["get", "new", "--print-value-only"]);
    assert_eq!(got.stdout.trim(), "write");
}

#[test]
fn auth_data_survives_etcd_to_oxcd_to_etcd() {
    let source = Member::start(Kind::Etcd35);
    let ctl = source.ctl(CtlVersion::V35);
    for args in [
        vec!["user", "add", "root:rootpw"],
        vec!["role", "add", "root"],
        vec!["user", "grant-role", "root", "root"],
        vec!["user", "add", "alice:alicepw"],
        vec!["role", "add", "reader"],
        vec!["role", "grant-permission", "reader", "read", "app/", "--prefix"],
        vec!["role", "grant-permission", "reader", "readwrite", "exact"],
        vec!["user", "grant-role", "alice", "reader"],
        vec!["put", "app/x", "1"],
        vec!["auth", "enable"],
    ] {
        ctl.run(&args).assert_success();
    }
    let root = |c: Etcdctl| c.global_arg("--user=root:rootpw");
    let facts = |c: &Etcdctl| -> Vec<String> {
        [
            vec!["user", "list"],
            vec!["role", "list"],
            vec!["role", "get", "reader"],
            vec!["user", "get", "alice"],
            vec!["auth", "status"],
            vec!["get", "app/x", "--print-value-only"],
        ]
        .into_iter()
        .map(|args| {
            let out = root(c.clone()).run(&args);
            format!("{} → {} {}", args.join(" "), out.stdout.trim(), out.stderr.trim())
        })
        .collect()
    };
    let expected = facts(&ctl);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("auth.db");
    root(ctl.clone()).run(&["snapshot", "save", &file.display().to_string()]).assert_success();

    let (oxcd_member, _) = restore_into_oxcd(&file, &[]);
    let back = dir.path().join("back.db");
    let out = oxcd(&[
        "snapshot",
        "save",
        &back.display().to_string(),
        "--endpoints",
        &oxcd_member.client_addr(),
        "--user=root:rootpw",
    ]);
    assert!(out.success(), "{out}");
    let mut etcd = Member::create(MemberConfig::new(Kind::Etcd35));
    let out = etcdutl(&[
        "snapshot",
        "restore",
        &back.display().to_string(),
        "--data-dir",
        &etcd.data_dir().display().to_string(),
        "--name=n1",
        "--initial-cluster",
        etcd.initial_cluster(),
        "--initial-cluster-token=oxcd-e2e",
        "--initial-advertise-peer-urls",
        &etcd.peer_url(),
    ]);
    assert!(out.success(), "{out}");
    etcd.launch().unwrap_or_else(|e| panic!("etcd: {e}"));
    let got = facts(&etcd.ctl(CtlVersion::V35));
    // `auth status` prints the auth revision, which the round trip keeps too.
    assert_eq!(got, expected);
    // Alice's password still works, and her permissions hold.
    let alice = etcd.ctl(CtlVersion::V35).global_arg("--user=alice:alicepw");
    assert!(alice.run(&["get", "app/x"]).success());
    assert!(!alice.run(&["put", "app/x", "2"]).success());
}

#[test]
fn restored_leases_expire_after_their_ttl() {
    let source = Member::start(Kind::Etcd35);
    let ctl = source.ctl(CtlVersion::V35);
    let short = oxcd_e2e::lease_id(&ctl.run(&["lease", "grant", "5"]));
    let long = oxcd_e2e::lease_id(&ctl.run(&["lease", "grant", "3600"]));
    ctl.run(&["put", "short", "v", "--lease", &short]).assert_success();
    ctl.run(&["put", "long", "v", "--lease", &long]).assert_success();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("leases.db");
    ctl.run(&["snapshot", "save", &file.display().to_string()]).assert_success();

    let (restored, _) = restore_into_oxcd(&file, &[]);
    let ctl = restored.ctl(CtlVersion::V35);
    // The restored leader runs the restored lease's timer from its full TTL and revokes it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = ctl.run(&["get", "short", "--print-value-only"]);
        if got.success() && got.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the 5 s lease never expired: {got}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = ctl.run(&["lease", "list"]);
    assert!(list.stdout.contains(&long) && !list.stdout.contains(&short), "{list}");
    assert_eq!(ctl.run(&["get", "long", "--print-value-only"]).stdout, "v\n");
}
