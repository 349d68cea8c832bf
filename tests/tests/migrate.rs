//! `oxcd migrate --from-v2-endpoint`: a live etcd 3.4.23 v2 tree (`--enable-v2`, written with
//! `ETCDCTL_API=2 etcdctl`) copied into oxcd's v3 keyspace, then followed: later v2 changes
//! show up as v3 changes, also after the follower fell out of etcd's 1000-event window.

use std::process::Command;
use std::time::{Duration, Instant};

use oxcd_e2e::etcdctl::{run_command, Spawned};
use oxcd_e2e::{bins, CtlOutput, CtlVersion, Etcdctl, Kind, Member, MemberConfig};

fn oxcd_migrate(args: &[&str]) -> Command {
    let mut cmd = Command::new(bins::oxcd());
    cmd.arg("migrate").args(args);
    cmd
}

fn migrate(args: &[&str]) -> CtlOutput {
    run_command(
        oxcd_migrate(args),
        format!("oxcd migrate {}", args.join(" ")),
        None,
        Duration::from_secs(120),
    )
}

fn v2(etcd: &Member) -> Etcdctl {
    Etcdctl::new(CtlVersion::V34, [etcd.client_url()]).api2()
}

/// Polls `oxcd` until `get key --print-value-only` prints `want` (None: the key is absent).
fn wait_value(ctl: &Etcdctl, key: &str, want: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ctl.run(&["get", key, "--print-value-only"]);
        let got = out.stdout.trim_end_matches('\n');
        let ok = match want {
            Some(w) => got == w,
            None => out.success() && got.is_empty(),
        };
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{key}: wanted {want:?}, still {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_seed_walkthrough_from_a_live_etcd_v2() {
    let etcd = Member::start_with(MemberConfig::new(Kind::Etcd34).arg("--enable-v2"));
    let ctl2 = v2(&etcd);
    ctl2.run(&["set", "foo", "bar"]).assert_success();
    let json = ctl2.run(&["-o", "json", "get", "foo"]);
    assert!(json.stdout.contains(r#""key":"/foo","value":"bar""#), "{json}");
    ctl2.run(&["mkdir", "dir"]).assert_success();
    ctl2.run(&["set", "dir/x", "1"]).assert_success();
    ctl2.run(&["mkdir", "dir/empty"]).assert_success();
    ctl2.run(&["set", "--ttl", "600", "ttl", "expiring"]).assert_success();

    let oxcd = Member::start(Kind::Oxcd);
    let out =
        migrate(&["--from-v2-endpoint", &etcd.client_url(), "--endpoints", &oxcd.client_addr()]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.starts_with("migrated 3 keys (1 with a TTL, in 1 leases)"), "{out}");

    let ctl3 = oxcd.ctl(CtlVersion::V35);
    let got = ctl3.run(&["get", "/foo"]);
    assert_eq!(got.stdout, "/foo\nbar\n", "{got}");
    let all = ctl3.run(&["get", "", "--prefix", "--keys-only"]);
    assert_eq!(all.stdout, "/dir/x\n\n/foo\n\n/ttl\n\n", "directories are dropped: {all}");
    let leased = ctl3.run(&["get", "/ttl", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&leased.stdout).expect("json");
    let lease = v["kvs"][0]["lease"].as_i64().expect("a lease");
    let ttl = ctl3.run(&["lease", "timetolive", &format!("{lease:x}")]);
    assert!(ttl.stdout.contains("granted with TTL(") && ttl.success(), "{ttl}");

    // Existing v3 keys are not overwritten unless asked.
    let again =
        migrate(&["--from-v2-endpoint", &etcd.client_url(), "--endpoints", &oxcd.client_addr()]);
    assert_eq!(again.code, Some(1), "{again}");
    assert!(again.stderr.contains("refusing to overwrite 3 existing v3 key(s)"), "{again}");
    ctl2.run(&["set", "foo", "changed"]).assert_success();
    let forced = migrate(&[
        "--from-v2-endpoint",
        &etcd.client_url(),
        "--endpoints",
        &oxcd.client_addr(),
        "--overwrite",
        "--no-ttl",
    ]);
    assert!(forced.success(), "{forced}");
    assert_eq!(ctl3.run(&["get", "/foo", "--print-value-only"]).stdout, "changed\n");

    // A member without the v2 API is refused with a hint.
    let plain = Member::start(Kind::Etcd34);
    let refused =
        migrate(&["--from-v2-endpoint", &plain.client_url(), "--endpoints", &oxcd.client_addr()]);
    assert_eq!(refused.code, Some(1), "{refused}");
}

#[test]
fn follow_applies_v2_changes_until_stopped() {
    let etcd = Member::start_with(MemberConfig::new(Kind::Etcd34).arg("--enable-v2"));
    let ctl2 = v2(&etcd);
    ctl2.run(&["set", "a", "1"]).assert_success();
    ctl2.run(&["set", "d/x", "1"]).assert_success();
    ctl2.run(&["set", "d/y", "1"]).assert_success();
    let oxcd = Member::start(Kind::Oxcd);
    let ctl3 = oxcd.ctl(CtlVersion::V35);
    let args =
        ["--from-v2-endpoint", &etcd.client_url(), "--endpoints", &oxcd.client_addr(), "--follow"];
    let mut follower = Spawned::start(oxcd_migrate(&args), "oxcd migrate --follow".into());
    let first = follower.lines(2, Duration::from_secs(30));
    assert!(
        first.len() == 2 && first[1].starts_with("following changes"),
        "{first:?} {}",
        follower.stderr()
    );
    wait_value(&ctl3, "/a", Some("1"));

    ctl2.run(&["set", "a", "2"]).assert_success();
    ctl2.run(&["mk", "b", "new"]).assert_success();
    ctl2.run(&["rm", "--recursive", "d"]).assert_success();
    ctl2.run(&["update", "b", "updated"]).assert_success();
    wait_value(&ctl3, "/a", Some("2"));
    wait_value(&ctl3, "/b", Some("updated"));
    wait_value(&ctl3, "/d/x", None);
    wait_value(&ctl3, "/d/y", None);

    // Stopped (SIGSTOP) past etcd's 1000-event history: the follower copies the tree again.
    let pid = follower.pid().expect("running");
    oxcd_e2e::server::signal(pid, libc::SIGSTOP);
    for i in 0..1100 {
        ctl2.run(&["set", "many", &i.to_string()]).assert_success();
    }
    ctl2.run(&["rm", "a"]).assert_success();
    oxcd_e2e::server::signal(pid, libc::SIGCONT);
    wait_value(&ctl3, "/many", Some("1099"));
    wait_value(&ctl3, "/a", None);

    follower.interrupt();
    assert_eq!(follower.wait_exit(Duration::from_secs(10)), Some(0), "{}", follower.stderr());
    let lines = follower.drain(Duration::from_millis(200), Duration::from_secs(2));
    assert!(lines.iter().any(|l| l.contains("copying the tree again")), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("stopped"), "{lines:?}");
}

/// The v3 `mod_revision` of `key` as a member serves it (serializable: that member's own
/// state), or None when absent.
fn mod_revision(ctl: &Etcdctl, key: &str) -> Option<i64> {
    let out = ctl.run(&["get", key, "-w", "json", "--consistency=s"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    v["kvs"][0]["mod_revision"].as_i64()
}

#[test]
fn the_seed_walkthrough_on_oxcd_with_the_offline_migration() {
    let mut oxcd = Member::start_with(MemberConfig::new(Kind::Oxcd).arg("--enable-v2"));
    let ctl2 = v2(&oxcd);
    let set = ctl2.run(&["set", "foo", "bar"]);
    assert_eq!(set.stdout, "bar\n", "{set}");
    let json = ctl2.run(&["--output=json", "get", "foo"]);
    assert!(
        json.stdout.contains(
            r#""key":"/foo","value":"bar","nodes":null,"createdIndex":4,"modifiedIndex":4"#
        ) || json.stdout.contains(r#""key":"/foo","value":"bar""#),
        "{json}"
    );
    ctl2.run(&["mkdir", "dir"]).assert_success();
    ctl2.run(&["set", "dir/x", "1"]).assert_success();
    ctl2.run(&["mkdir", "dir/empty"]).assert_success();
    ctl2.run(&["set", "--ttl", "600", "ttl", "expiring"]).assert_success();
    let ctl3 = oxcd.ctl(CtlVersion::V35);
    assert_eq!(ctl3.run(&["get", "/foo"]).stdout, "", "v2 keys are not v3 keys");

    oxcd.stop();
    let data_dir = oxcd.data_dir().display().to_string();
    let out = migrate(&["--data-dir", &data_dir]);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout.lines().take(3).collect::<Vec<_>>(),
        ["/dir/x", "/foo", "/ttl (lease 7632000000000000)"],
        "{out}"
    );
    assert!(
        out.stdout.contains(
            "converted 3 v2 keys into v3 keys (1 with a TTL, in 1 leases; 0 already converted)"
        ),
        "{out}"
    );
    // Idempotent: a second run converts nothing.
    let again = migrate(&["--data-dir", &data_dir]);
    assert!(
        again.stdout.contains(
            "converted 0 v2 keys into v3 keys (0 with a TTL, in 0 leases; 3 already converted)"
        ),
        "{again}"
    );
    // A running member's data dir is refused, as is a directory that is not one.
    let nowhere = migrate(&["--data-dir", "/nonexistent-oxcd-dir"]);
    assert_eq!(nowhere.code, Some(1), "{nowhere}");
    assert!(nowhere.stderr.contains("not an oxcd data dir"), "{nowhere}");

    oxcd.restart();
    let got = ctl3.run(&["get", "/foo"]);
    assert_eq!(got.stdout, "/foo\nbar\n", "{got}");
    let all = ctl3.run(&["get", "", "--prefix", "--keys-only"]);
    assert_eq!(all.stdout, "/dir/x\n\n/foo\n\n/ttl\n\n", "directories are dropped: {all}");
    let revs: Vec<_> = ["/dir/x", "/foo", "/ttl"].iter().map(|k| mod_revision(&ctl3, k)).collect();
    assert!(revs[0].is_some() && revs.iter().all(|r| *r == revs[0]), "one revision: {revs:?}");
    let ttl = ctl3.run(&["lease", "timetolive", "7632000000000000", "--keys"]);
    assert!(ttl.stdout.contains("attached keys([/ttl])"), "{ttl}");
    let remaining: i64 = ttl
        .stdout
        .split("remaining(")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1);
    assert!((500..=600).contains(&remaining), "{ttl}");
    // The v2 data is still there (a copy, not a move).
    assert_eq!(ctl2.run(&["get", "foo"]).stdout, "bar\n");
}

#[test]
fn the_online_migration_is_one_replicated_revision() {
    let cluster = oxcd_e2e::Cluster::try_start(Kind::Oxcd, 3, |c| c.arg("--enable-v2"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ctl2 = Etcdctl::new(CtlVersion::V34, [cluster.members[1].client_url()]).api2();
    ctl2.run(&["set", "foo", "bar"]).assert_success();
    ctl2.run(&["set", "dir/x", "1"]).assert_success();
    ctl2.run(&["set", "--ttl", "300", "ttl", "t"]).assert_success();
    let ctl3 = cluster.ctl(CtlVersion::V35);
    ctl3.run(&["put", "/foo", "v3 value"]).assert_success();
    let leader = cluster.members[0].client_url();

    let refused = migrate(&["--endpoints", &leader]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(
        refused.stderr.contains("refusing to overwrite 1 existing v3 key(s), e.g. /foo"),
        "{refused}"
    );
    assert_eq!(ctl3.run(&["get", "/dir/x"]).stdout, "", "nothing written when refused");

    // Through a follower, with --overwrite: every key at one revision, on every member.
    let done = migrate(&["--endpoints", &cluster.members[2].client_url(), "--overwrite"]);
    assert!(done.success(), "{done}");
    assert!(
        done.stdout.contains(
            "converted 3 v2 keys into v3 keys (1 with a TTL, in 1 leases; 0 already converted)"
        ),
        "{done}"
    );
    let revision: i64 = done
        .stdout
        .rsplit("at revision ")
        .next()
        .and_then(|r| r.trim().parse().ok())
        .expect("a revision");
    for m in &cluster.members {
        let ctl = Etcdctl::new(CtlVersion::V35, [m.client_url()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let revs: Vec<_> =
                ["/dir/x", "/foo", "/ttl"].iter().map(|k| mod_revision(&ctl, k)).collect();
            if revs.iter().all(|r| *r == Some(revision)) {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {revs:?} != {revision}", m.name());
            std::thread::sleep(Duration::from_millis(100));
        }
        let v = ctl.run(&["get", "/foo", "--print-value-only", "--consistency=s"]);
        assert_eq!(v.stdout, "bar\n", "{}", m.name());
    }
    // Re-running changes nothing.
    let again = migrate(&["--endpoints", &leader]);
    assert!(
        again.stdout.contains(
            "converted 0 v2 keys into v3 keys (0 with a TTL, in 0 leases; 3 already converted)"
        ),
        "{again}"
    );
    assert_eq!(mod_revision(&ctl3, "/foo"), Some(revision));
}

/// The v3 keys and values of a member, one `key=value` line each.
fn v3_pairs(ctl: &Etcdctl) -> Vec<String> {
    let out = ctl.run(&["get", "", "--prefix"]);
    assert!(out.success(), "{out}");
    out.stdout.lines().collect::<Vec<_>>().chunks(2).map(|kv| kv.join("=")).collect()
}

#[test]
fn a_stopped_etcd_34_data_dir_migrates_as_etcdctl_migrate_converts_it() {
    // etcd 3.4.23 with its v2 store, a raft snapshot every 10 entries: the tree comes
    // partly from the snapshot file and partly from the WAL entries after it.
    let mut etcd = Member::start_with(
        MemberConfig::new(Kind::Etcd34).arg("--enable-v2").arg("--snapshot-count=10"),
    );
    let ctl2 = v2(&etcd);
    for i in 0..12 {
        ctl2.run(&["set", &format!("k{i}"), &format!("v{i}")]).assert_success();
    }
    ctl2.run(&["mkdir", "dir"]).assert_success();
    ctl2.run(&["set", "dir/x", "hello world"]).assert_success();
    ctl2.run(&["mkdir", "dir/empty"]).assert_success();
    ctl2.run(&["set", "--ttl", "600", "ttl", "expiring"]).assert_success();
    ctl2.run(&["set", "--ttl", "1", "gone", "soon"]).assert_success();
    ctl2.run(&["rm", "k3"]).assert_success();
    ctl2.run(&["update", "k4", "new4"]).assert_success();
    ctl2.run(&["set", "k5", "v5b", "--swap-with-value", "v5"]).assert_success();
    let failed = ctl2.run(&["set", "k6", "never", "--swap-with-value", "wrong"]);
    assert!(!failed.success(), "{failed}");
    ctl2.run(&["mk", "--in-order", "queue", "job1"]).assert_success();
    ctl2.run(&["set", "dir2/a", "1"]).assert_success();
    ctl2.run(&["rm", "--recursive", "dir2"]).assert_success();
    ctl2.run(&["set", "last", "written after the snapshot"]).assert_success();
    // Let the 1 s key expire (etcd's leader removes it with a SYNC entry).
    wait_v2_absent(&ctl2, "gone");

    let oxcd = Member::start(Kind::Oxcd);
    let data_dir = etcd.data_dir().display().to_string();
    let running = migrate(&["--data-dir", &data_dir, "--endpoints", &oxcd.client_addr()]);
    assert_eq!(running.code, Some(1), "{running}");
    assert!(running.stderr.contains("the etcd member is still running"), "{running}");

    etcd.stop();
    let snaps = std::fs::read_dir(etcd.data_dir().join("member/snap"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension() == Some("snap".as_ref()))
                .count()
        })
        .unwrap_or(0);
    assert!(snaps > 0, "etcd wrote no raft snapshot: the test would not read one");
    let out = migrate(&["--data-dir", &data_dir, "--endpoints", &oxcd.client_addr()]);
    assert!(out.success(), "{out}");
    let ours = v3_pairs(&oxcd.ctl(CtlVersion::V35));
    let summary =
        format!("migrated {} keys (1 with a TTL, in 1 leases) from etcd data dir", ours.len());
    assert!(out.stdout.contains(&summary), "{out}");

    // A second run refuses to overwrite what the first wrote.
    let again = migrate(&["--data-dir", &data_dir, "--endpoints", &oxcd.client_addr()]);
    assert_eq!(again.code, Some(1), "{again}");
    let refusal = format!("refusing to overwrite {} existing v3 key(s)", ours.len());
    assert!(again.stderr.contains(&refusal), "{again}");

    // The reference: etcd 3.4's own `etcdctl migrate` on the same (stopped) data dir, then
    // etcd started on it again.
    let reference = Etcdctl::new(CtlVersion::V34, [etcd.client_url()]).run(&[
        "migrate",
        "--data-dir",
        &data_dir,
    ]);
    assert!(reference.success(), "{reference}");
    etcd.restart();
    let theirs = v3_pairs(&etcd.ctl(CtlVersion::V34));
    assert_eq!(ours, theirs, "oxcd's migration differs from etcdctl migrate's");
    assert!(ours.contains(&"/k5=v5b".to_string()) && ours.contains(&"/k4=new4".to_string()));
    assert!(!ours.iter().any(|kv| kv.starts_with("/k3=") || kv.starts_with("/gone=")));
}

#[test]
fn a_corrupt_etcd_snapshot_is_refused_and_nothing_is_written() {
    let mut etcd = Member::start_with(
        MemberConfig::new(Kind::Etcd34).arg("--enable-v2").arg("--snapshot-count=5"),
    );
    let ctl2 = v2(&etcd);
    for i in 0..8 {
        ctl2.run(&["set", &format!("k{i}"), "v"]).assert_success();
    }
    etcd.stop();
    let snap_dir = etcd.data_dir().join("member/snap");
    let snaps: Vec<_> = std::fs::read_dir(&snap_dir)
        .expect("snap dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension() == Some("snap".as_ref()))
        .collect();
    assert!(!snaps.is_empty(), "etcd wrote no raft snapshot");
    for snap in snaps {
        let mut bytes = std::fs::read(&snap).expect("read snapshot");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&snap, bytes).expect("write snapshot");
    }

    let oxcd = Member::start(Kind::Oxcd);
    let data_dir = etcd.data_dir().display().to_string();
    let out = migrate(&["--data-dir", &data_dir, "--endpoints", &oxcd.client_addr()]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("CRC mismatch (the file is corrupt)"), "{out}");
    assert!(v3_pairs(&oxcd.ctl(CtlVersion::V35)).is_empty(), "nothing written");
}

/// Polls the v2 API until `key` is gone (expired).
fn wait_v2_absent(ctl2: &Etcdctl, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctl2.run(&["get", key]).success() {
        assert!(Instant::now() < deadline, "{key} never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
}
