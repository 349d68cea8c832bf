//! Differential tests on 3-member clusters (initial-cluster over
//! 127.0.0.1, same flags for etcd and oxcd): membership listing, writes on
//! one member read from another, and endpoint status across members.
//!
//! The leader may legitimately differ between runs, so the IS LEADER column
//! is only compared as a count of leaders.

use oxcd_e2e::{CtlVersion, Differential, Etcdctl};

#[test]
fn three_members() {
    Differential::new("cluster::three_members").members(3).run(|s| {
        let urls: Vec<String> = s.cluster().client_urls();
        let first = Etcdctl::new(s.version(), [urls[0].clone()]);
        let last = Etcdctl::new(s.version(), [urls[2].clone()]);
        let out = s.etcdctl().run(&["member", "list"]);
        // Member list order follows member IDs, which are random: sort.
        let mut lines: Vec<&str> = out.stdout.lines().collect();
        lines.sort_by_key(|l| l.split(", ").nth(2).unwrap_or("").to_string());
        let names: Vec<String> =
            lines.iter().map(|l| l.split(", ").skip(1).collect::<Vec<_>>().join(", ")).collect();
        s.record("member list (sorted by name, without IDs)", &names.join("\n"));
        s.ctl_with(&first, &["put", "k", "v"]);
        s.ctl_with(&last, &["get", "k", "-w", "json"]);
        s.ctl_with(&last, &["put", "k", "v2", "--prev-kv"]);
        s.ctl_with(&first, &["get", "k"]);
        let status = s.etcdctl().run(&["endpoint", "status", "-w", "json"]);
        let leaders: std::collections::HashSet<String> = status
            .stdout
            .split("\"leader\":")
            .skip(1)
            .map(|r| r.split(',').next().unwrap_or("").to_string())
            .collect();
        s.check("all members agree on one leader", leaders.len() == 1);
        if s.version() == CtlVersion::V35 {
            let h = s.etcdctl().run(&["endpoint", "health", "--cluster"]);
            let healthy = h
                .stdout
                .lines()
                .chain(h.stderr.lines())
                .filter(|l| l.contains("is healthy"))
                .count();
            s.record("healthy members", &healthy.to_string());
        }
    });
}
