//! Differential tests of `etcdctl watch`: a spawned watcher (single key,
//! prefix, key range, `--rev` history, `--prev-kv`, JSON output) and writes
//! from another etcdctl. The watcher's stdout lines are recorded and
//! compared like any command output.

use oxcd_e2e::differential;

#[test]
fn single_key() {
    differential("watch::single_key", |s| {
        s.setup(&["put", "foo", "before"]);
        let mut w = s.spawn(&["watch", "foo"]);
        s.wait_connected(&mut w);
        s.ctl(&["put", "foo", "1"]);
        s.ctl(&["put", "bar", "x"]);
        s.ctl(&["put", "foo", "2"]);
        s.ctl(&["put", "foobar", "y"]);
        s.ctl(&["del", "foo"]);
        s.ctl(&["del", "foo"]);
        s.watched(&mut w, 8);
    });
}

#[test]
fn prefix_and_range() {
    differential("watch::prefix_and_range", |s| {
        let mut p = s.spawn(&["watch", "p/", "--prefix"]);
        let mut r = s.spawn(&["watch", "a", "c"]);
        s.wait_connected(&mut p);
        s.wait_connected(&mut r);
        s.ctl(&["put", "p/1", "one"]);
        s.ctl(&["put", "q/1", "no"]);
        s.ctl(&["put", "p/2", "two"]);
        s.ctl(&["put", "a", "in"]);
        s.ctl(&["put", "b/x", "in"]);
        s.ctl(&["put", "c", "out"]);
        s.ctl(&["del", "p/", "--prefix"]);
        s.ctl(&["del", "a", "c"]);
        s.watched(&mut p, 10);
        s.watched(&mut r, 10);
    });
}

#[test]
fn history_from_rev_1() {
    differential("watch::history_from_rev_1", |s| {
        s.ctl(&["put", "foo", "v1"]);
        s.ctl(&["put", "bar", "b"]);
        s.ctl(&["put", "foo", "v2"]);
        s.ctl(&["del", "foo"]);
        s.ctl(&["put", "foo", "v3"]);
        let mut w = s.spawn(&["watch", "foo", "--rev=1"]);
        s.watched(&mut w, 11);
        // Empty key + --prefix: every key. (History is compared in the simple
        // format only: how events are batched into responses may differ.)
        let mut all = s.spawn(&["watch", "", "--prefix", "--rev=3"]);
        s.watched(&mut all, 10);
        // History then live events on the same watcher.
        let mut live = s.spawn(&["watch", "foo", "--rev=5", "--prev-kv"]);
        s.wait_connected(&mut live);
        s.ctl(&["put", "foo", "v4"]);
        s.watched(&mut live, 10);
    });
}

#[test]
fn prev_kv_and_json() {
    differential("watch::prev_kv_and_json", |s| {
        s.setup(&["put", "foo", "old"]);
        let mut w = s.spawn(&["watch", "foo", "--prev-kv"]);
        let mut j = s.spawn(&["watch", "foo", "--prev-kv", "-w", "json"]);
        s.wait_connected(&mut w);
        s.wait_connected(&mut j);
        s.ctl(&["put", "foo", "new"]);
        s.ctl(&["put", "foo", "newer"]);
        s.ctl(&["del", "foo"]);
        s.watched(&mut w, 15);
        s.watched(&mut j, 3);
    });
}

#[test]
fn watch_exec_command() {
    differential("watch::exec_command", |s| {
        let mut w = s.spawn(&[
            "watch",
            "foo",
            "--",
            "sh",
            "-c",
            "echo \"event=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY value=$ETCD_WATCH_VALUE rev=$ETCD_WATCH_REVISION\"",
        ]);
        s.wait_connected(&mut w);
        s.ctl(&["put", "foo", "x"]);
        s.ctl(&["del", "foo"]);
        s.watched(&mut w, 8);
    });
}
