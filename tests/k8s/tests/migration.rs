//! `spec.migration` end to end on the rig: a three-member cluster whose members serve the v2
//! API (`spec.server.extraArgs: [--enable-v2]`), v2 keys written with stock etcdctl 3.4
//! (`ETCDCTL_API=2`), then `spec.migration` applied: every member serves the v3 keys at one
//! revision, the `Migrated` condition and `status.migration` record it, and applying the
//! manifest again (or a changed one) never converts a second time.

mod common;

use std::time::Instant;

use common::{etcdctl, member_ctl, wait_ready, Rig, NS, WAIT};
use kube::Api;
use oxcd_k8s_rig::poll::wait_some;
use oxcd_operator::crd::EtcdCluster;
use oxcd_operator::migration::CONDITION;

const CLUSTER: &str =
    "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: legacy\n\
                       spec:\n  replicas: 3\n  server:\n    extraArgs: [\"--enable-v2\"]\n";

fn with_migration(extra: &str) -> String {
    format!("{CLUSTER}  migration:\n    overwrite: false{extra}\n")
}

/// The Migrated condition and status.migration, once the condition is not Waiting.
async fn migrated(
    api: &Api<EtcdCluster>,
) -> (k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition, EtcdCluster) {
    wait_some(WAIT, "the Migrated condition", || async {
        let c = api.get("legacy").await.ok()?;
        let cond = c.status.as_ref()?.conditions.iter().find(|c| c.type_ == CONDITION)?.clone();
        (cond.reason != "Waiting").then_some((cond, c))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spec_migration_converts_v2_keys_once_on_every_member() {
    let rig = Rig::start("migration-test").await;
    let t = Instant::now();
    rig.apply(CLUSTER);
    wait_ready(&rig.client(), "legacy", 3).await;
    eprintln!("cluster with 3 ready members: {:.1} s", t.elapsed().as_secs_f64());

    // v2 data, written through the client Service with etcdctl 3.4's v2 commands.
    let v2 = etcdctl("legacy", 3).api2();
    v2.run(&["set", "foo", "bar"]).assert_success();
    v2.run(&["mkdir", "dir"]).assert_success();
    v2.run(&["set", "dir/x", "1"]).assert_success();
    v2.run(&["mkdir", "dir/empty"]).assert_success();
    v2.run(&["set", "--ttl", "600", "ttl", "expiring"]).assert_success();
    let v3 = etcdctl("legacy", 3);
    let (_, before) = v3.everything();
    assert_eq!(before, serde_json::Value::Null, "no v3 keys before the migration");
    let api: Api<EtcdCluster> = Api::namespaced(rig.client(), NS);
    let status = api.get("legacy").await.expect("cluster").status.unwrap_or_default();
    assert!(!status.conditions.iter().any(|c| c.type_ == CONDITION), "{status:?}");

    let t = Instant::now();
    rig.apply(&with_migration(""));
    let (cond, cluster) = migrated(&api).await;
    eprintln!("migrated: {:.1} s, {cond:?}", t.elapsed().as_secs_f64());
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("True", "Migrated"), "{cond:?}");
    let done = cluster.status.clone().and_then(|s| s.migration).expect("status.migration");
    assert_eq!((done.keys, done.keys_with_ttl, done.leases, done.unchanged), (3, 1, 1, 0));
    assert!(cond.message.contains(&format!("at revision {}", done.revision)), "{cond:?}");

    // Every member serves the v3 keys, all written at the recorded revision (serializable
    // reads: each member's own copy, which a follower may apply a moment later).
    for o in 0..3 {
        let one = member_ctl("legacy", o);
        let what = format!("legacy-{o} to serve the v3 keys at revision {}", done.revision);
        wait_some(WAIT, &what, || async {
            let text = one.run(&["get", "", "--prefix", "--consistency=s"]);
            let json = one.run(&["get", "", "--prefix", "--consistency=s", "-w", "json"]);
            let v: serde_json::Value = serde_json::from_str(&json.stdout).ok()?;
            let revs: Vec<i64> =
                v["kvs"].as_array()?.iter().filter_map(|kv| kv["mod_revision"].as_i64()).collect();
            let ok = text.stdout == "/dir/x\n1\n/foo\nbar\n/ttl\nexpiring\n"
                && revs == vec![done.revision; 3];
            ok.then_some(())
        })
        .await;
    }
    let ttl = v3.run(&["get", "/ttl", "-w", "json"]);
    let lease = serde_json::from_str::<serde_json::Value>(&ttl.stdout).expect("json")["kvs"][0]
        ["lease"]
        .as_i64()
        .unwrap_or(0);
    assert_ne!(lease, 0, "the TTL'd key has a lease: {ttl}");

    // Re-applying the manifest is a no-op; so is a changed spec (a new generation asking
    // to overwrite): a v3 write made since is never replaced by a second conversion.
    v3.run(&["put", "/foo", "changed in v3"]).assert_success();
    rig.apply(&with_migration(""));
    rig.apply(&with_migration("\n    noTTL: true").replace("overwrite: false", "overwrite: true"));
    let generation = api.get("legacy").await.expect("cluster").metadata.generation;
    // The operator has seen the new generation (the Available condition records it).
    let after = wait_some(WAIT, "a status for the new generation", || async {
        let c = api.get("legacy").await.ok()?;
        let s = c.status.clone()?;
        (s.observed_generation == generation).then_some(s)
    })
    .await;
    let again = after.conditions.iter().find(|c| c.type_ == CONDITION).expect("kept");
    assert_eq!(again, &cond, "the condition is unchanged");
    assert_eq!(after.migration.as_ref(), Some(&done), "status.migration is unchanged");
    let foo = v3.run(&["get", "/foo", "--print-value-only"]);
    assert_eq!(foo.stdout, "changed in v3\n", "{foo}");
    rig.stop().await;
}
