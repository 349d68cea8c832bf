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
