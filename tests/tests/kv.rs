//! Differential tests of the key-value commands: put, get (all range
//! options and output formats), del, revisions.
//!
//! Each test runs the same etcdctl sequence against etcd 3.5.1 and oxcd with
//! etcdctl 3.5 and 3.4, comparing normalized outputs (see
//! `oxcd_e2e::normalize` for exactly what is ignored: IDs, raft term, sizes,
//! timings, ports; revisions are compared).

use oxcd_e2e::{differential, CtlVersion};

#[test]
fn put_get_formats() {
    differential("kv::put_get_formats", |s| {
        s.ctl(&["put", "foo", "bar"]);
        s.ctl(&["get", "foo"]);
        s.ctl(&["get", "foo", "--print-value-only"]);
        s.ctl(&["get", "foo", "-w", "json"]);
        s.ctl(&["get", "foo", "-w", "fields"]);
        s.ctl(&["get", "foo", "--hex"]);
        s.ctl(&["put", "foo", "baz", "--prev-kv"]);
        s.ctl(&["put", "foo", "qux", "--prev-kv", "-w", "json"]);
        s.ctl(&["put", "new", "v", "--prev-kv"]);
        s.ctl(&["get", "foo", "-w", "json"]);
        s.ctl(&["put", "foo", "same", "-w", "json"]);
        s.ctl(&["get", "missing"]);
        s.ctl(&["get", "missing", "-w", "json"]);
        // Odd values: empty, spaces, unicode, leading dash.
        s.ctl(&["put", "empty", ""]);
        s.ctl(&["get", "empty", "-w", "json"]);
        s.ctl(&["put", "spaced key", "a value with  spaces"]);
        s.ctl(&["get", "spaced key"]);
        s.ctl(&["put", "uni", "héllo wörld ✓"]);
        s.ctl(&["get", "uni", "-w", "json"]);
        s.ctl(&["put", "dash", "--", "-v"]);
        s.ctl(&["get", "dash"]);
        s.ctl(&["get", "", "--from-key", "--keys-only"]);
    });
}

#[test]
fn put_ignore_flags() {
    differential("kv::put_ignore_flags", |s| {
        s.ctl(&["put", "k", "v1"]);
        s.ctl(&["put", "k", "--ignore-value"]);
        s.ctl(&["get", "k", "-w", "json"]);
        s.ctl(&["put", "nokey", "--ignore-value"]);
        s.ctl(&["put", "k", "v2", "--ignore-lease"]);
        s.ctl(&["get", "k", "-w", "json"]);
    });
}

fn seed(s: &mut oxcd_e2e::Session) {
    // Written in an order that makes KEY, CREATE, MODIFY, VALUE and VERSION
    // sort orders all different.
    for (k, v) in
        [("p/c", "1"), ("p/a", "3"), ("p/b", "2"), ("p/e", "0"), ("p/d", "5"), ("q/x", "9")]
    {
        s.setup(&["put", k, v]);
    }
    s.setup(&["put", "p/a", "4"]);
    s.setup(&["put", "p/a", "6"]);
    s.setup(&["put", "p/e", "7"]);
}

#[test]
fn range_options() {
    differential("kv::range_options", |s| {
        seed(s);
        s.ctl(&["get", "p/", "--prefix"]);
        s.ctl(&["get", "p/", "--prefix", "-w", "json"]);
        s.ctl(&["get", "p/", "--prefix", "--keys-only"]);
        s.ctl(&["get", "p/", "--prefix", "--keys-only", "-w", "json"]);
        s.ctl(&["get", "p/", "--prefix", "--print-value-only"]);
        s.ctl(&["get", "p/", "--prefix", "--limit=2"]);
        s.ctl(&["get", "p/", "--prefix", "--limit=2", "-w", "json"]);
        s.ctl(&["get", "p/", "--prefix", "--limit=100", "-w", "json"]);
        for sort in ["KEY", "CREATE", "MODIFY", "VALUE", "VERSION"] {
            for order in ["ASCEND", "DESCEND"] {
                let by = format!("--sort-by={sort}");
                let ord = format!("--order={order}");
                s.ctl(&["get", "p/", "--prefix", &by, &ord, "--keys-only"]);
            }
        }
        s.ctl(&["get", "p/", "--prefix", "--order=DESCEND"]);
        s.ctl(&["get", "p/", "--prefix", "--sort-by=VALUE"]);
        s.ctl(&["get", "p/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--limit=2"]);
        s.ctl(&["get", "p/b", "--from-key"]);
        s.ctl(&["get", "p/b", "--from-key", "--keys-only", "--limit=3"]);
        s.ctl(&["get", "p/b", "p/d"]);
        s.ctl(&["get", "p/b", "p/d", "-w", "json"]);
        s.ctl(&["get", "p/zz", "p/a"]);
        s.ctl(&["get", "r/", "--prefix"]);
        s.ctl(&["get", "p/", "--prefix", "--consistency=s", "--keys-only"]);
        if s.version() == CtlVersion::V35 {
            s.ctl(&["get", "p/", "--prefix", "--count-only", "-w", "fields"]);
            s.ctl(&["get", "", "--from-key", "--count-only", "-w", "fields"]);
        }
    });
}

#[test]
fn delete() {
    differential("kv::delete", |s| {
        seed(s);
        s.ctl(&["del", "p/a"]);
        s.ctl(&["del", "p/a"]);
        s.ctl(&["del", "p/b", "--prev-kv"]);
        s.ctl(&["del", "p/b", "--prev-kv", "-w", "json"]);
        s.ctl(&["del", "p/c", "p/e"]);
        s.ctl(&["get", "", "--from-key", "--keys-only"]);
        s.ctl(&["del", "p/", "--prefix", "--prev-kv", "-w", "json"]);
        s.ctl(&["del", "p/", "--prefix"]);
        s.ctl(&["put", "z1", "1"]);
        s.ctl(&["put", "z2", "2"]);
        s.ctl(&["del", "z", "--from-key", "-w", "json"]);
        s.ctl(&["get", "", "--from-key", "-w", "json"]);
    });
}

#[test]
fn revisions() {
    differential("kv::revisions", |s| {
        s.ctl(&["put", "foo", "v1"]);
        s.ctl(&["put", "foo", "v2"]);
        s.ctl(&["put", "bar", "b1"]);
        s.ctl(&["put", "foo", "v3"]);
        s.ctl(&["del", "bar"]);
        for rev in ["1", "2", "3", "4", "5", "6"] {
            let r = format!("--rev={rev}");
            s.ctl(&["get", "foo", &r]);
            s.ctl(&["get", "", "--from-key", &r, "-w", "json"]);
        }
        s.ctl(&["get", "foo", "--rev=0", "-w", "json"]);
        s.ctl(&["get", "bar", "--rev=4", "-w", "json"]);
        s.ctl(&["get", "foo", "-w", "json", "--consistency=s"]);
    });
}
