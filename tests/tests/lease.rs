//! Differential tests of leases: grant, attach keys with `put --lease`,
//! timetolive (with `--keys`), list, keep-alive (`--once` and streaming),
//! revoke, expiry, and the minimum TTL.
//!
//! Remaining TTLs are masked (`remaining(<TTL>)`, `"ttl":<TTL>`), granted
//! TTLs are compared.

use std::time::Duration;

use oxcd_e2e::{differential, lease_id};

#[test]
fn grant_attach_timetolive_revoke() {
    differential("lease::grant_attach_timetolive_revoke", |s| {
        let id = lease_id(&s.ctl(&["lease", "grant", "60"]));
        let lease = format!("--lease={id}");
        s.ctl(&["put", "foo", "bar", &lease]);
        s.ctl(&["get", "foo", "-w", "json"]);
        s.ctl(&["get", "foo", "-w", "fields"]);
        s.ctl(&["lease", "timetolive", &id]);
        // (--keys is only asked while one key is attached: etcd lists
        // attached keys in map order.)
        s.ctl(&["lease", "timetolive", &id, "--keys"]);
        s.ctl(&["lease", "timetolive", &id, "--keys", "-w", "json"]);
        s.ctl(&["lease", "list"]);
        s.ctl(&["lease", "list", "-w", "json"]);
        s.ctl(&["lease", "keep-alive", "--once", &id]);
        s.ctl(&["lease", "keep-alive", "--once", &id, "-w", "json"]);
        s.ctl(&["put", "baz", "qux", &lease]);
        s.ctl(&["put", "other", "o", &lease]);
        s.ctl(&["get", "baz", "-w", "json"]);
        // Re-putting without --lease detaches the key.
        s.ctl(&["put", "baz", "qux2"]);
        s.ctl(&["put", "other", "o2", "--ignore-lease"]);
        s.ctl(&["get", "", "--from-key", "-w", "json"]);
        s.ctl(&["del", "other"]);
        s.ctl(&["lease", "timetolive", &id, "--keys"]);
        s.ctl(&["lease", "revoke", &id]);
        s.ctl(&["get", "", "--from-key"]);
        s.ctl(&["lease", "list"]);
        s.ctl(&["lease", "timetolive", &id]);
        s.ctl(&["lease", "timetolive", &id, "-w", "json"]);
    });
}

#[test]
fn grant_json_and_min_ttl() {
    differential("lease::grant_json_and_min_ttl", |s| {
        s.ctl(&["lease", "grant", "100", "-w", "json"]);
        s.ctl(&["lease", "grant", "1"]);
        s.ctl(&["lease", "grant", "0"]);
        s.ctl(&["lease", "grant", "9000000000"]);
        s.ctl(&["lease", "grant", "9000000001"]);
    });
}

#[test]
fn expiry_deletes_keys() {
    differential("lease::expiry_deletes_keys", |s| {
        // TTL 2 s is etcd's minimum; wait well past it.
        let id = lease_id(&s.ctl(&["lease", "grant", "2"]));
        let lease = format!("--lease={id}");
        s.ctl(&["put", "tmp/a", "1", &lease]);
        s.ctl(&["put", "tmp/b", "2", &lease]);
        s.ctl(&["put", "keep", "3"]);
        s.ctl(&["get", "", "--from-key", "--keys-only"]);
        // Wait (unrecorded, bounded) until the leader has revoked the lease.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while s.etcdctl().run(&["get", "tmp/a"]).stdout.contains("tmp/a") {
            assert!(std::time::Instant::now() < deadline, "lease not expired within 15 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        s.ctl(&["get", "", "--from-key", "--keys-only"]);
        s.ctl(&["lease", "timetolive", &id]);
        s.ctl(&["lease", "list"]);
        // The expiry deletion is one revision: keep was rev 4, deletion rev 5.
        s.ctl(&["put", "after", "x", "-w", "json"]);
    });
}

#[test]
fn keep_alive_stream() {
    differential("lease::keep_alive_stream", |s| {
        let id = lease_id(&s.ctl(&["lease", "grant", "3"]));
        s.ctl(&["put", "alive", "yes", &format!("--lease={id}")]);
        let mut ka = s.spawn(&["lease", "keep-alive", &id]);
        // Keep-alives are sent every TTL/3 = 1 s; take the first two.
        let lines = ka.lines(2, Duration::from_secs(10));
        s.record_lines("first keep-alive responses", &lines);
        // Outlive the TTL while the keep-alive runs: five more responses, one per TTL/3.
        let more = ka.lines(5, Duration::from_secs(15));
        assert_eq!(more.len(), 5, "keep-alive responses while outliving the TTL");
        s.ctl(&["get", "alive"]);
        ka.kill();
        s.ctl(&["lease", "revoke", &id]);
        s.ctl(&["get", "alive"]);
    });
}
