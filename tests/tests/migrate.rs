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
