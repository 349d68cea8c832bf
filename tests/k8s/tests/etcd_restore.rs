//! Moving an existing etcd onto an oxcd cluster, the documented way: `etcdctl snapshot save`
//! on a real etcd 3.6.17, the file put on a PersistentVolumeClaim (here straight into the
//! claim's directory, as a person would with `kubectl cp` into a pod mounting it), then an
//! `EtcdCluster` whose `spec.restore` names the claim and the path. The new three-member oxcd
//! cluster serves every key of the etcd at the same revisions (create, mod, version), the same
//! header revision, and the lease with its key.

mod common;

use std::time::Instant;

use common::{etcdctl, member_ctl, wait_ready, Rig, NS, WAIT};
use oxcd_e2e::etcdctl::CtlVersion;
use oxcd_e2e::server::{Kind, Member};
use oxcd_k8s_rig::poll::{poll_some, wait_some};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_etcd_36_snapshot_on_a_claim_restores_into_a_three_member_oxcd_cluster() {
    // The existing etcd: keys written, overwritten and deleted, a lease with a key, a
    // compaction; then its own etcdctl saves the snapshot.
    let etcd = Member::start(Kind::Etcd36);
    let ctl = etcd.ctl(CtlVersion::V35);
    for i in 0..200 {
        ctl.run(&["put", &format!("app/{i:03}"), &format!("value {i}")]).assert_success();
    }
    for i in (0..200).step_by(10) {
        ctl.run(&["put", &format!("app/{i:03}"), "overwritten"]).assert_success();
    }
    for i in (5..200).step_by(50) {
        ctl.run(&["del", &format!("app/{i:03}")]).assert_success();
    }
    let grant = ctl.run(&["lease", "grant", "3600"]);
    grant.assert_success();
    let lease = grant.stdout.split_whitespace().nth(1).expect("lease id").to_string();
    ctl.run(&["put", "leased", "yes", "--lease", &lease]).assert_success();
    ctl.run(&["compact", "100"]).assert_success();
    let (rev, kvs) = ctl.everything();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("etcd.db");
    let etcdctl36 = oxcd_e2e::bins::etcd36_dir().join("etcdctl");
    let saved = std::process::Command::new(&etcdctl36)
        .args(["--endpoints", &etcd.client_url(), "snapshot", "save"])
        .arg(&file)
        .output()
        .expect("etcdctl 3.6");
    assert!(saved.status.success(), "{}", String::from_utf8_lossy(&saved.stderr));
    let size = std::fs::metadata(&file).expect("the snapshot").len();
    eprintln!(
        "etcd 3.6.17: {} keys at revision {rev}, lease {lease}, snapshot {size} bytes",
        kvs.as_array().map(Vec::len).unwrap_or(0)
    );

    // The claim, and the file in it.
    let rig = Rig::start("etcd-restore-test").await;
    rig.apply(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: moved\nspec:\n  \
         accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n",
    );
    let claim =
        wait_some(WAIT, "the claim's directory", || async { rig.kubelet.claim_dir(NS, "moved") })
            .await;
    std::fs::create_dir_all(claim.join("from-etcd")).expect("a directory on the claim");
    std::fs::copy(&file, claim.join("from-etcd/etcd-3.6.db")).expect("the file on the claim");

    let t = Instant::now();
    rig.apply(
        "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: moved\nspec:\n  \
         replicas: 3\n  restore:\n    pvc:\n      claimName: moved\n    key: from-etcd/etcd-3.6.db\n",
    );
    wait_ready(&rig.client(), "moved", 3).await;
    eprintln!("etcd 3.6.17 snapshot → 3 ready oxcd members: {:.1} s", t.elapsed().as_secs_f64());

    // Through the client Service: the same header revision and every key-value exactly
    // (create/mod revisions, versions, lease ids).
    let (rrev, rkvs) = etcdctl("moved", 3).everything();
    assert_eq!(rrev, rev, "revision");
    assert!(rkvs == kvs, "the keys restored from etcd's snapshot differ:\n{rkvs}\nvs\n{kvs}");
    // Every member has them (serializable reads on each).
    for o in 0..3 {
        let one = member_ctl("moved", o);
        let got = poll_some(WAIT, || async {
            let out = one.run(&["get", "app/199", "--print-value-only", "--consistency=s"]);
            (out.stdout.trim() == "value 199").then_some(())
        })
        .await;
        assert!(got.is_some(), "moved-{o} never served app/199");
    }
    // The lease, with its key.
    let ttl = etcdctl("moved", 3).run(&["lease", "timetolive", &lease, "--keys"]);
    ttl.assert_success();
    assert!(ttl.stdout.contains("attached keys([leased])"), "{ttl}");
    assert!(!ttl.stdout.contains("already expired"), "{ttl}");
    // The compaction came along: the history before it is gone, as on the etcd.
    let old = etcdctl("moved", 3).run(&["get", "app/000", "--rev", "50"]);
    let old_etcd = ctl.run(&["get", "app/000", "--rev", "50"]);
    assert!(!old.success() && !old_etcd.success(), "{old} / {old_etcd}");
    assert!(old.stderr.contains("required revision has been compacted"), "{old}");
    // And the cluster takes writes on top.
    etcdctl("moved", 3).run(&["put", "after", "move"]).assert_success();
    rig.stop().await;
}
