//! Differential tests of the maintenance and cluster commands: endpoint
//! status/health, member list, alarm list, compaction, defrag, snapshot
//! save (+ `etcdutl snapshot status` on the saved file, and `etcdutl snapshot
//! restore` read back by a real etcd 3.5.1).
//!
//! Besides the default masks (IDs, raft term/index, sizes, timings,
//! version), the snapshot's HASH and TOTAL KEYS columns are masked: they
//! describe the storage engine's internal layout, not client-visible data.

use std::time::Duration;

use oxcd_e2e::{differential, lease_id, Differential, Kind, Member, MemberConfig};

#[test]
fn endpoint_status_and_health() {
    differential("maintenance::endpoint_status_and_health", |s| {
        s.ctl(&["put", "foo", "bar"]);
        s.ctl(&["endpoint", "status", "-w", "table"]);
        s.ctl(&["endpoint", "status", "-w", "json"]);
        s.ctl(&["endpoint", "status"]);
        s.ctl(&["endpoint", "health", "-w", "table"]);
        s.ctl(&["endpoint", "health"]);
        s.ctl(&["endpoint", "health", "-w", "json"]);
    });
}

#[test]
fn member_list() {
    differential("maintenance::member_list", |s| {
        s.ctl(&["member", "list", "-w", "table"]);
        s.ctl(&["member", "list"]);
        s.ctl(&["member", "list", "-w", "json"]);
        s.ctl(&["endpoint", "status", "-w", "table", "--cluster"]);
    });
}

#[test]
fn alarms() {
    differential("maintenance::alarms", |s| {
        s.ctl(&["alarm", "list"]);
        s.ctl(&["alarm", "list", "-w", "json"]);
        s.ctl(&["alarm", "disarm"]);
        s.ctl(&["put", "after-disarm", "ok"]);
    });
}

#[test]
fn compaction() {
    differential("maintenance::compaction", |s| {
        for v in ["v1", "v2", "v3", "v4"] {
            s.ctl(&["put", "foo", v]);
        }
        s.ctl(&["put", "bar", "b"]);
        s.ctl(&["compaction", "3"]);
        s.ctl(&["get", "foo", "--rev=2"]);
        s.ctl(&["get", "foo", "--rev=3"]);
        s.ctl(&["get", "foo", "--rev=4", "-w", "json"]);
        s.ctl(&["get", "foo", "-w", "json"]);
        s.ctl(&["compaction", "3"]);
        s.ctl(&["compaction", "2"]);
        s.ctl(&["compaction", "100"]);
        s.ctl(&["compaction", "--physical", "5"]);
        s.ctl(&["get", "foo", "--rev=4"]);
        s.ctl(&["get", "", "--from-key", "--rev=5", "-w", "json"]);
        s.ctl(&["endpoint", "status", "-w", "table"]);
        // A watch from a compacted revision is canceled by the server.
        let mut w = s.spawn(&["watch", "foo", "--rev=2"]);
        let code = w.wait_exit(Duration::from_secs(15));
        let lines = w.drain(Duration::from_millis(200), Duration::from_secs(2));
        s.record_lines("watch --rev=2 after compaction: stdout", &lines);
        let err = w.stderr();
        let err = s.normalizer().stderr(&err);
        s.record("watch --rev=2 after compaction: stderr", &err);
        s.record("watch --rev=2 after compaction: exit", &format!("{code:?}"));
        // A watch from the compaction revision itself still works.
        let mut ok = s.spawn(&["watch", "foo", "--rev=5"]);
        let lines = ok.lines(6, Duration::from_secs(15));
        s.record_lines("watch --rev=5", &lines);
    });
}

#[test]
fn defrag() {
    differential("maintenance::defrag", |s| {
        s.setup(&["put", "foo", "bar"]);
        s.ctl(&["defrag"]);
        s.ctl(&["defrag", "--cluster"]);
        s.ctl(&["get", "foo"]);
        s.ctl(&["endpoint", "status", "-w", "table"]);
    });
}

#[test]
fn snapshot_save_and_status() {
    Differential::new("maintenance::snapshot_save_and_status").run(|s| {
        for i in 0..10 {
            s.setup(&["put", &format!("key{i}"), &format!("value{i}")]);
        }
        s.setup(&["del", "key3"]);
        s.setup(&["compact", "5"]);
        let lease = lease_id(&s.setup(&["lease", "grant", "600"]));
        s.setup(&["put", "leased", "v", "--lease", &lease]);
        let file = s.tmp_file("snap.db");
        s.ctl(&["snapshot", "save", &file]);
        s.etcdutl(&["snapshot", "status", "-w", "table", &file]);
        s.etcdutl(&["snapshot", "status", "-w", "json", &file]);
        // etcdctl's own (3.4: bbolt check and hash trailer rule; 3.5: deprecated alias).
        s.ctl(&["snapshot", "status", "-w", "json", &file]);
        // Restore the snapshot with etcdutl and read it back with a real
        // etcd: proves the file is a usable etcd snapshot.
        let restored = s.tmp_file("restored");
        let out = s.etcdutl(&[
            "snapshot",
            "restore",
            &file,
            "--data-dir",
            &restored,
            "--name=r1",
            "--initial-cluster=r1=http://127.0.0.1:1",
            "--initial-advertise-peer-urls=http://127.0.0.1:1",
        ]);
        s.check("restore succeeded", out.success());
        // A real etcd 3.5.1 on the restored data dir serves the same keys, revisions,
        // compaction and leases.
        let cfg = MemberConfig::new(Kind::Etcd35).arg(format!("--data-dir={restored}"));
        let etcd = Member::start_with(cfg);
        let ctl = etcd.ctl(s.version());
        s.ctl_with(&ctl, &["get", "", "--prefix", "-w", "json"]);
        s.ctl_with(&ctl, &["get", "key1", "--rev", "4"]);
        s.ctl_with(&ctl, &["get", "key3", "--rev", "11"]);
        s.ctl_with(&ctl, &["lease", "list"]);
        s.ctl_with(&ctl, &["put", "after", "restore", "-w", "json"]);
    });
}
