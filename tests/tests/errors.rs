//! Differential tests of error cases: the exact error text, gRPC status
//! code and exit code etcdctl shows for empty keys, future and compacted
//! revisions, unknown leases, bad transactions and out-of-range values.

use oxcd_e2e::differential;

#[test]
fn empty_key() {
    differential("errors::empty_key", |s| {
        s.ctl(&["put", "", "v"]);
        s.ctl(&["get", ""]);
        s.ctl(&["del", ""]);
        s.ctl(&["get", "", "-w", "json"]);
        s.ctl_input(&["txn"], "\nput \"\" v\n\n\n");
    });
}

#[test]
fn future_revision() {
    differential("errors::future_revision", |s| {
        s.ctl(&["put", "foo", "bar"]);
        s.ctl(&["get", "foo", "--rev=100"]);
        s.ctl(&["get", "foo", "--rev=3"]);
        s.ctl(&["get", "foo", "--rev=2"]);
        s.ctl(&["get", "foo", "--rev=100", "-w", "json"]);
        s.ctl(&["compaction", "100"]);
    });
}

#[test]
fn compacted_revision() {
    differential("errors::compacted_revision", |s| {
        for v in ["1", "2", "3"] {
            s.ctl(&["put", "foo", v]);
        }
        s.ctl(&["compaction", "3"]);
        s.ctl(&["get", "foo", "--rev=1"]);
        s.ctl(&["get", "foo", "--rev=2"]);
        s.ctl(&["get", "foo", "--rev=2", "-w", "json"]);
        s.ctl(&["compaction", "2"]);
    });
}

#[test]
fn unknown_lease() {
    differential("errors::unknown_lease", |s| {
        s.ctl(&["lease", "revoke", "1234"]);
        s.ctl(&["lease", "timetolive", "1234"]);
        s.ctl(&["lease", "timetolive", "1234", "-w", "json"]);
        s.ctl(&["lease", "keep-alive", "--once", "1234"]);
        s.ctl(&["put", "foo", "bar", "--lease=1234"]);
        s.ctl(&["put", "foo", "bar", "--lease=abc"]);
        s.ctl_input(&["txn"], "\nput foo bar --lease=1234\n\n\n");
        s.ctl(&["lease", "revoke", "zz"]);
        s.ctl(&["get", "foo"]);
    });
}

#[test]
fn bad_transactions() {
    differential("errors::bad_transactions", |s| {
        s.ctl_input(&["txn"], "\nput a 1\nput a 2\n\n\n");
        s.ctl_input(&["txn"], "\nput a 1\ndel a\n\n\n");
        s.ctl_input(&["txn"], "\ndel p/ --prefix\nput p/x 1\n\n\n");
        // Same key in success and failure branches is fine.
        s.ctl_input(&["txn"], "value(\"a\") = \"x\"\n\nput a 1\n\nput a 2\n\n");
        // More operations than --max-txn-ops (default 128).
        let mut many = String::from("\n");
        for i in 0..129 {
            many.push_str(&format!("put k{i} v\n"));
        }
        many.push_str("\n\n");
        s.ctl_input(&["txn"], &many);
        let mut ok = String::from("\n");
        for i in 0..128 {
            ok.push_str(&format!("put k{i} v\n"));
        }
        ok.push_str("\n\n");
        s.ctl_input(&["txn", "-w", "json"], &ok);
        s.ctl(&["get", "k", "--prefix", "--keys-only", "--limit=3"]);
        // Malformed compare: rejected by etcdctl itself.
        s.ctl_input(&["txn"], "bogus(\"a\") = \"1\"\n\n\n\n");
    });
}

#[test]
fn lease_ttl_limits() {
    differential("errors::lease_ttl_limits", |s| {
        s.ctl(&["lease", "grant", "9000000001"]);
        s.ctl(&["lease", "grant", "-5"]);
        s.ctl(&["lease", "list"]);
    });
}
