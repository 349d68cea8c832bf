//! Differential tests of transactions: `etcdctl txn` in interactive and
//! non-interactive mode, fed from stdin, with every compare target and
//! operator, success and failure branches, and JSON output.

use oxcd_e2e::differential;

/// The seed tour's transaction: compares `value("user1") = "bad"`,
/// success `del user1`, failure `put user1 good`.
const USER1_TXN: &str = "value(\"user1\") = \"bad\"\n\ndel user1\n\nput user1 good\n\n";

#[test]
fn interactive_seed_tour() {
    differential("txn::interactive_seed_tour", |s| {
        s.ctl(&["put", "user1", "bad"]);
        // Success branch: user1 is "bad", so it is deleted.
        s.ctl_input(&["txn", "--interactive"], USER1_TXN);
        s.ctl(&["get", "user1"]);
        // Failure branch: user1 is gone, so it is put back as "good".
        s.ctl_input(&["txn", "--interactive"], USER1_TXN);
        s.ctl(&["get", "user1", "-w", "json"]);
        // Again: still not "bad" → failure branch; JSON output.
        s.ctl_input(&["txn", "--interactive", "-w", "json"], USER1_TXN);
    });
}

#[test]
fn non_interactive_and_json() {
    differential("txn::non_interactive_and_json", |s| {
        s.ctl(&["put", "user1", "bad"]);
        s.ctl_input(&["txn"], USER1_TXN);
        s.ctl_input(&["txn", "-w", "json"], USER1_TXN);
        s.ctl_input(&["txn", "-w", "fields"], USER1_TXN);
        // No compares: always the success branch; gets inside the txn.
        s.ctl_input(&["txn"], "\nput a 1\nput b 2\nget a\n\nput c 3\n\n");
        s.ctl_input(&["txn", "-w", "json"], "\nget a\nget b\nget nope\n\n\n");
        s.ctl_input(&["txn"], "\n\n\n");
    });
}

#[test]
fn compare_targets_and_operators() {
    differential("txn::compare_targets_and_operators", |s| {
        s.setup(&["put", "k", "v1"]);
        s.setup(&["put", "k", "v2"]);
        s.setup(&["put", "other", "o"]);
        let compares = [
            "value(\"k\") = \"v2\"",
            "value(\"k\") = \"v1\"",
            "value(\"k\") > \"v1\"",
            "value(\"k\") < \"v1\"",
            "value(\"k\") != \"v2\"",
            "value(\"k\") != \"zz\"",
            "version(\"k\") = \"2\"",
            "version(\"k\") > \"1\"",
            "version(\"nope\") = \"0\"",
            "create(\"k\") = \"2\"",
            "create(\"k\") < \"3\"",
            "create(\"nope\") = \"0\"",
            "mod(\"k\") = \"3\"",
            "mod(\"k\") > \"3\"",
            "value(\"nope\") = \"\"",
        ];
        for c in compares {
            s.ctl_input(&["txn"], &format!("{c}\n\nget k\n\nget other\n\n"));
        }
        // Several compares: all must hold.
        s.ctl_input(
            &["txn", "-w", "json"],
            "value(\"k\") = \"v2\"\nversion(\"k\") = \"2\"\nmod(\"other\") < \"2\"\n\nput r yes\n\nput r no\n\n",
        );
        s.ctl(&["get", "r"]);
        s.ctl_input(
            &["txn"],
            "value(\"k\") = \"v2\"\nversion(\"k\") = \"2\"\n\nput r yes\n\nput r no\n\n",
        );
        s.ctl(&["get", "r", "-w", "json"]);
    });
}

#[test]
fn ops_with_options() {
    differential("txn::ops_with_options", |s| {
        for (k, v) in [("p/a", "1"), ("p/b", "2"), ("p/c", "3"), ("q", "4")] {
            s.setup(&["put", k, v]);
        }
        s.ctl_input(&["txn"], "\nget p/ --prefix\nget p/a p/c\n\n\n");
        s.ctl_input(&["txn", "-w", "json"], "\nget p/ --prefix --keys-only\n\n\n");
        s.ctl_input(&["txn", "-w", "json"], "\ndel p/ --prefix --prev-kv\n\n\n");
        s.ctl(&["get", "", "--from-key"]);
        s.ctl_input(&["txn", "-w", "json"], "\nput q 5 --prev-kv\n\n\n");
    });
}

/// A txn whose success branch puts and then reads a future revision fails as a whole: etcd
/// checks every request of the chosen branch (ranges too) before applying any, so the put
/// is not applied, no watcher sees it and its revision is not consumed. (oxcd once applied
/// the put, published `a=1`, and gave the next put the same revision.)
#[test]
fn failed_txn_leaves_no_write_no_event_no_revision() {
    differential("txn::failed_txn_leaves_no_write_no_event_no_revision", |s| {
        let mut w = s.spawn(&["watch", "", "--prefix"]);
        s.wait_connected(&mut w);
        s.ctl(&["put", "a", "0"]);
        s.ctl_input(&["txn"], "\nput a 1\nget b --rev=1000\n\n\n");
        s.ctl_input(&["txn", "-w", "json"], "\nput a 2\nget b --rev=1000\n\nput a 3\n\n");
        s.ctl(&["put", "c", "2", "-w", "json"]);
        s.ctl(&["get", "a", "-w", "json"]);
        s.ctl(&["get", "", "--prefix", "-w", "json"]);
        // A failure branch is checked the same way.
        s.ctl_input(&["txn"], "value(\"a\") = \"nope\"\n\nput x 1\n\ndel c\nget c --rev=999\n\n");
        s.ctl(&["get", "c"]);
        s.ctl(&["put", "d", "4", "-w", "json"]);
        // A put with a missing lease after a put: nothing applied either.
        s.ctl_input(&["txn"], "\nput e 5\nput f 6 --lease=1234abcd\n\n\n");
        s.ctl(&["put", "g", "7", "-w", "json"]);
        s.ctl(&["get", "", "--prefix", "--keys-only"]);
        // The watcher saw exactly the puts that succeeded: a=0, c=2, d=4, g=7.
        s.watched(&mut w, 12);
    });
}
