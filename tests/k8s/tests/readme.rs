//! The README's backup, restore and migration examples, applied on the rig exactly as written:
//! its fenced blocks tagged ```` ```yaml readme:<name> ```` are read from `README.md`, and what
//! the README says comes out (the snapshot's location, the `Migrated` message) is checked.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{etcdctl, wait_ready, Rig, NS, WAIT};
use kube::Api;
use oxcd_k8s_rig::poll::wait_some;
use oxcd_operator::backup::api::EtcdSnapshot;
use oxcd_operator::crd::EtcdCluster;
use oxcd_operator::migration::CONDITION;

fn repo_file(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The README's ```` ```yaml readme:<name> ```` blocks, by name.
fn blocks(readme: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in readme.lines() {
        match &mut current {
            None => {
                if let Some(name) = line.strip_prefix("```yaml readme:") {
                    current = Some((name.trim().to_string(), String::new()));
                }
            }
            Some((name, body)) => {
                if line.starts_with("```") {
                    out.insert(name.clone(), std::mem::take(body));
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    out
}

/// The `# ...` line the README prints after the line containing `command`.
fn printed_after(readme: &str, command: &str) -> String {
    let mut lines = readme.lines().skip_while(|l| !l.contains(command));
    lines.next();
    let out = lines.next().unwrap_or_default();
    out.strip_prefix("# ").unwrap_or_else(|| panic!("no output after {command}")).to_string()
}

#[test]
fn the_readme_blocks_are_found() {
    let b = blocks(&repo_file("README.md"));
    let names: Vec<&str> = b.keys().map(String::as_str).collect();
    assert_eq!(names, ["migration", "restore", "snapshot", "v2-cluster"]);
    assert!(b["snapshot"].contains("kind: EtcdSnapshot"), "{}", b["snapshot"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readme_backup_restore_and_migration_examples_work_as_written() {
    let readme = repo_file("README.md");
    let b = blocks(&readme);
    let rig = Rig::start("readme-test").await;

    // The quick start's cluster, with data.
    rig.apply(&repo_file("charts/oxcd/examples/etcdcluster.yaml"));
    wait_ready(&rig.client(), "example", 3).await;
    let ctl = etcdctl("example", 3);
    for i in 0..30 {
        ctl.run(&["put", &format!("app/{i:02}"), &format!("value {i}")]).assert_success();
    }
    let (rev, kvs) = ctl.everything();

    // The snapshot to a claim; its location is the one the README prints.
    let t = Instant::now();
    rig.apply(&b["snapshot"]);
    let snaps: Api<EtcdSnapshot> = Api::namespaced(rig.client(), NS);
    let st = wait_some(WAIT, "example-now to finish", || async {
        let st = snaps.get("example-now").await.ok()?.status?;
        matches!(st.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(st)
    })
    .await;
    eprintln!("README snapshot: {:.1} s, {st:?}", t.elapsed().as_secs_f64());
    assert_eq!(st.phase.as_deref(), Some("Succeeded"), "{st:?}");
    let printed = printed_after(&readme, "get etcdsnapshot example-now");
    let location = printed.split_whitespace().next().unwrap_or_default();
    assert_eq!(st.location.as_deref(), Some(location));

    // The restore by name: every key at the source's revision.
    let t = Instant::now();
    rig.apply(&b["restore"]);
    wait_ready(&rig.client(), "restored", 3).await;
    eprintln!("README restore, 3 ready members: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(etcdctl("restored", 3).everything(), (rev, kvs), "restored");

    // The v2 cluster, v2 data, then the manifest with spec.migration added.
    rig.apply(&b["v2-cluster"]);
    wait_ready(&rig.client(), "legacy", 3).await;
    let v2 = etcdctl("legacy", 3).api2();
    v2.run(&["set", "foo", "bar"]).assert_success();
    v2.run(&["set", "dir/x", "1"]).assert_success();
    v2.run(&["set", "--ttl", "600", "session", "alive"]).assert_success();
    let migrated = format!("{}{}", b["v2-cluster"], b["migration"]);
    let t = Instant::now();
    rig.apply(&migrated);
    let clusters: Api<EtcdCluster> = Api::namespaced(rig.client(), NS);
    let cond = wait_some(WAIT, "the Migrated condition", || async {
        let s = clusters.get("legacy").await.ok()?.status?;
        s.conditions.into_iter().find(|c| c.type_ == CONDITION && c.reason != "Waiting")
    })
    .await;
    eprintln!("README migration: {:.1} s, {}", t.elapsed().as_secs_f64(), cond.message);
    assert_eq!(cond.status, "True", "{cond:?}");
    assert_eq!(cond.message, printed_after(&readme, r#"(@.type=="Migrated")"#));
    let v3 = etcdctl("legacy", 3);
    assert_eq!(v3.run(&["get", "/dir/x", "--print-value-only"]).stdout, "1\n");
    assert_eq!(v3.run(&["get", "/session", "--print-value-only"]).stdout, "alive\n");
    rig.stop().await;
}
