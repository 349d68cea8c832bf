//! Self-tests of the harness against the reference binaries only (no
//! oxcd): every server kind starts and answers both etcdctl versions,
//! restart and kill -9 work, 3-member clusters form, the v2 API mode of
//! etcdctl 3.4 works, and spawned commands can be read and killed.

use std::time::Duration;

use oxcd_e2e::{bins, Cluster, CtlVersion, Etcdctl, Kind, Member, MemberConfig};

#[test]
fn reference_binaries_exist() {
    for p in
        [bins::etcd35(), bins::etcdctl35(), bins::etcdutl35(), bins::etcd34(), bins::etcdctl34()]
    {
        assert!(p.is_absolute() && p.is_file(), "{}", p.display());
    }
    let out = std::process::Command::new(bins::etcd35()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("etcd Version: 3.5.1"));
    let out = std::process::Command::new(bins::etcd34()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("etcd Version: 3.4"));
}

#[test]
fn etcd_kinds_start_and_restart() {
    for kind in [Kind::Etcd35, Kind::Etcd34] {
        let mut m = Member::start(kind);
        for v in CtlVersion::ALL {
            let ctl = m.ctl(v);
            ctl.run(&["put", "k", "v"]).assert_success();
            let out = ctl.run(&["get", "k", "--print-value-only"]);
            assert_eq!(out.stdout.trim(), "v", "{kind} with {v}: {out}");
        }
        let port = m.client_port();
        m.kill9();
        assert!(!m.is_running());
        m.restart();
        assert_eq!(m.client_port(), port, "restart keeps the ports");
        let out = m.ctl(CtlVersion::V35).run(&["get", "k", "--print-value-only"]);
        assert_eq!(out.stdout.trim(), "v", "data survives kill -9 + restart: {out}");
        m.stop();
        assert!(!m.is_running());
        m.restart();
        assert!(m.is_running());
        assert!(m.log_tail(5).lines().count() > 0, "the log captures output");
    }
}

#[test]
fn three_member_cluster() {
    let mut c = Cluster::start(Kind::Etcd35, 3);
    let ctl = c.ctl(CtlVersion::V35);
    let out = ctl.run(&["member", "list"]);
    assert_eq!(out.stdout.lines().count(), 3, "{out}");
    let one = c.members[0].ctl(CtlVersion::V34);
    one.run(&["put", "ck", "cv"]).assert_success();
    let three = c.members[2].ctl(CtlVersion::V35);
    let out = three.run(&["get", "ck", "--print-value-only"]);
    assert_eq!(out.stdout.trim(), "cv");
    // Lose one member: the cluster keeps quorum.
    // (If it was the leader, writes fail until a new one is elected.)
    c.members[1].kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = one.run(&["put", "ck", "cv2", "--command-timeout=3s"]);
        if out.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no quorum after losing one of three: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.members[1].restart();
    let two = c.members[1].ctl(CtlVersion::V35);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = two.run(&["get", "ck", "--print-value-only", "--consistency=s"]);
        if out.stdout.trim() == "cv2" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "restarted member never caught up: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn etcdctl_v2_mode() {
    let m = Member::start_with(MemberConfig::new(Kind::Etcd34).arg("--enable-v2=true"));
    let v2 = Etcdctl::new(CtlVersion::V34, [m.client_url()]).api2();
    let out = v2.run(&["set", "/dir/key", "value"]);
    assert_eq!(out.stdout.trim(), "value", "{out}");
    let out = v2.run(&["get", "/dir/key"]);
    assert_eq!(out.stdout.trim(), "value", "{out}");
    let out = v2.run(&["ls", "/dir"]);
    assert_eq!(out.stdout.trim(), "/dir/key", "{out}");
}

#[test]
fn spawned_watch_and_timeouts() {
    let m = Member::start(Kind::Etcd35);
    let ctl = m.ctl(CtlVersion::V35);
    let mut w = ctl.spawn(&["watch", "wk"]);
    assert!(w.wait_connected(m.client_port(), Duration::from_secs(10), Duration::from_millis(300)));
    ctl.run(&["put", "wk", "1"]).assert_success();
    assert_eq!(w.lines(3, Duration::from_secs(10)), ["PUT", "wk", "1"]);
    assert!(w.next_line(Duration::from_millis(200)).is_none());
    w.kill();
    assert!(w.has_exited());
    // A command that outlives its timeout is killed and reported.
    let out = ctl.clone().timeout(Duration::from_millis(500)).run(&["watch", "never"]);
    assert!(out.timed_out && out.code.is_none(), "{out}");
    // stdin is fed.
    let out = ctl.run_input(&["txn"], "\nput t 1\n\n\n");
    assert!(out.stdout.starts_with("SUCCESS"), "{out}");
}

#[test]
fn start_failure_reports_log() {
    let err = Member::try_start_with(MemberConfig::new(Kind::Etcd35).arg("--no-such-flag"))
        .err()
        .expect("bad flag must fail");
    assert!(err.to_string().contains("no-such-flag"), "{err}");
}
