//! Backups and restore driven by resources, end to end on the rig: a real kube-apiserver and
//! kube-controller-manager, members as real `oxcd` processes under the process kubelet, the
//! operator in this process (`oxcd_operator::app::run`, the binary's code), moto as a real
//! S3-compatible server. One control plane, several steps:
//! an on-demand `EtcdSnapshot` → stored, checked, its status filled; a schedule every few seconds
//! → scheduled snapshots created and pruned to the retention (objects and files together); a new
//! `EtcdCluster` with `spec.restore` from the on-demand snapshot → three members serving every key
//! and the revision of the source.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{etcdctl, member_ctl, wait_ready, Rig, NS, WAIT};
use futures::TryStreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use object_store::{ObjectStore, ObjectStoreExt};
use oxcd_e2e::s3::{S3Server, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use oxcd_k8s_rig::poll::{poll_some, wait_some};
use oxcd_operator::backup::api::{EtcdSnapshot, S3Bucket};

const BUCKET: &str = "oxcd-backups";

fn destination(s3: &S3Server) -> String {
    format!(
        "destination:\n    prefix: rig\n    s3:\n      bucket: {BUCKET}\n      endpoint: {}\n      \
         credentialsSecret: s3-creds\n",
        s3.endpoint()
    )
}

async fn snapshot_status(api: &Api<EtcdSnapshot>, name: &str) -> Option<(String, EtcdSnapshot)> {
    let s = api.get(name).await.ok()?;
    let phase = s.status.as_ref()?.phase.clone()?;
    Some((phase, s))
}

/// The keys in the bucket under `prefix`.
async fn bucket_keys(store: &dyn ObjectStore, prefix: &str) -> BTreeSet<String> {
    let p = object_store::path::Path::from(prefix);
    let list: Vec<_> = store.list(Some(&p)).try_collect().await.expect("list bucket");
    list.into_iter().map(|m| m.location.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_on_demand_and_scheduled_with_retention_then_restore_into_a_new_cluster() {
    let rig = Rig::start("backup-test").await;
    let cp = &rig.cp;

    // The bucket and its credentials.
    let s3 = S3Server::start("127.0.0.1");
    s3.create_bucket(BUCKET);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s3-creds\nstringData:\n  \
         AWS_ACCESS_KEY_ID: {ACCESS_KEY_ID}\n  AWS_SECRET_ACCESS_KEY: {SECRET_ACCESS_KEY}\n"
    );
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(&secret)).assert_success();
    let s3_bucket = S3Bucket {
        bucket: BUCKET.into(),
        endpoint: Some(s3.endpoint()),
        region: None,
        credentials_secret: String::new(),
    };
    let creds = oxcd_operator::backup::store::Credentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
    };
    let store = oxcd_operator::backup::store::s3(&s3_bucket, &creds).expect("store");

    // A one-member source cluster with data.
    let t = Instant::now();
    let src = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: src\nspec:\n  replicas: 1\n";
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(src)).assert_success();
    wait_ready(&cp.client(), "src", 1).await;
    eprintln!("source cluster ready: {:.1} s", t.elapsed().as_secs_f64());
    let ctl = etcdctl("src", 1);
    for i in 0..50 {
        ctl.run(&["put", &format!("app/{i:02}"), &format!("value {i}")]).assert_success();
    }
    let (rev, kvs) = ctl.everything();

    // On demand.
    let t = Instant::now();
    let manual = format!(
        "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdSnapshot\nmetadata:\n  name: manual\nspec:\n  \
         clusterRef: src\n  {}",
        destination(&s3)
    );
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(&manual)).assert_success();
    let snaps: Api<EtcdSnapshot> = Api::namespaced(cp.client(), NS);
    let (phase, snap) = wait_some(WAIT, "the on-demand snapshot to finish", || async {
        let (p, s) = snapshot_status(&snaps, "manual").await?;
        (p == "Succeeded" || p == "Failed").then_some((p, s))
    })
    .await;
    let st = snap.status.clone().expect("status");
    assert_eq!(phase, "Succeeded", "{st:?}");
    eprintln!("on-demand snapshot: {:.1} s, {st:?}", t.elapsed().as_secs_f64());
    assert_eq!(st.location.as_deref(), Some("s3://oxcd-backups/rig/default/src/manual.db"));
    assert_eq!(st.revision, Some(rev));
    assert_eq!(st.sha256.as_ref().map(String::len), Some(64));
    assert_eq!(st.member.as_deref(), Some("src-0"));
    let head = store.head(&"rig/default/src/manual.db".into()).await.expect("stored object");
    assert_eq!(Some(head.size as i64), st.size);
    let table = cp.kubectl_run(&["get", "etcdsnapshots", "-n", NS]);
    assert!(table.stdout.contains("Succeeded"), "{}", table.stdout);

    // Scheduled every 2 s, keeping 2: snapshots are created and the older ones pruned, their
    // files with them.
    let schedule = format!(
        "{}  backup:\n    schedule: \"*/2 * * * * *\"\n    retention: 2\n    {}",
        src,
        destination(&s3).replace("\n    ", "\n      ")
    );
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(&schedule)).assert_success();
    let lp = ListParams::default().labels("oxcd.dev/cluster=src,oxcd.dev/scheduled=true");
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let last = std::sync::Mutex::new(String::new());
    let pruned = poll_some(WAIT, || {
        let snaps = snaps.clone();
        let lp = lp.clone();
        let (seen, last) = (&seen, &last);
        async move {
            let list = snaps.list(&lp).await.ok()?.items;
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.extend(list.iter().map(|s| s.name_any()));
            let phase = |s: &EtcdSnapshot| s.status.as_ref().and_then(|st| st.phase.clone());
            *last.lock().unwrap_or_else(|e| e.into_inner()) = format!(
                "{:?}",
                list.iter()
                    .map(|s| (
                        s.name_any(),
                        phase(s),
                        s.status.as_ref().and_then(|st| st.message.clone())
                    ))
                    .collect::<Vec<_>>()
            );
            let ok = list.iter().filter(|s| phase(s).as_deref() == Some("Succeeded")).count();
            // The schedule fires faster than the operator looks, so a new snapshot not yet
            // taken is usually listed beside the two kept ones.
            let not_done = list.iter().filter(|s| !s.is_done()).count();
            (seen.len() >= 4 && ok == 2 && list.len() == ok + not_done).then_some(())
        }
    })
    .await;
    assert!(
        pruned.is_some(),
        "scheduled snapshots were not pruned to 2: seen {:?}, last listed {}",
        seen.lock().unwrap_or_else(|e| e.into_inner()),
        last.lock().unwrap_or_else(|e| e.into_inner())
    );
    // Stop the schedule, then the bucket holds exactly the kept snapshots and the manual one.
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(src)).assert_success();
    let kept: BTreeSet<String> = wait_some(WAIT, "the schedule to settle", || async {
        let list = snaps.list(&lp).await.ok()?.items;
        let done = list.iter().all(|s| s.is_done());
        done.then(|| list.iter().map(|s| format!("rig/default/src/{}.db", s.name_any())).collect())
    })
    .await;
    let keys = bucket_keys(store.as_ref(), "rig/default/src").await;
    let mut expected = kept.clone();
    expected.insert("rig/default/src/manual.db".into());
    assert!(keys.is_superset(&expected), "{keys:?} lacks some of {expected:?}");
    let seen = seen.lock().map(|s| s.len()).unwrap_or_default();
    eprintln!("scheduled snapshots seen: {seen}; kept: {kept:?}");

    // A new three-member cluster restored from the on-demand snapshot.
    let t = Instant::now();
    let restored = format!(
        "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: restored\nspec:\n  \
         replicas: 3\n  restore:\n    key: rig/default/src/manual.db\n    sha256: {}\n    s3:\n      \
         bucket: {BUCKET}\n      endpoint: {}\n      credentialsSecret: s3-creds\n",
        st.sha256.clone().unwrap_or_default(),
        s3.endpoint()
    );
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(&restored)).assert_success();
    wait_ready(&cp.client(), "restored", 3).await;
    eprintln!("restored cluster with 3 ready members: {:.1} s", t.elapsed().as_secs_f64());
    let rctl = etcdctl("restored", 3);
    let (rrev, rkvs) = rctl.everything();
    assert_eq!(rkvs, kvs, "the restored keys differ from the source's");
    assert!(rrev >= rev, "restored revision {rrev} < source {rev}");
    // Every member gets the data (serializable reads on each member; a member that has just
    // joined may still be applying what it received).
    for o in 0..3 {
        let one = member_ctl("restored", o);
        let last = std::sync::Mutex::new(String::new());
        let got = poll_some(WAIT, || async {
            let out = one.run(&["get", "app/07", "--print-value-only", "--consistency=s"]);
            *last.lock().unwrap_or_else(|e| e.into_inner()) = out.to_string();
            (out.stdout.trim() == "value 7").then_some(())
        })
        .await;
        assert!(
            got.is_some(),
            "restored-{o} never served app/07: {}",
            last.lock().unwrap_or_else(|e| e.into_inner())
        );
    }
    // A one-member cluster restored by naming the EtcdSnapshot (bucket, key and sha256 are
    // taken from it).
    let t = Instant::now();
    let by_name = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: byname\n\
                   spec:\n  replicas: 1\n  restore:\n    snapshot: manual\n";
    cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(by_name)).assert_success();
    wait_ready(&cp.client(), "byname", 1).await;
    eprintln!("restored from EtcdSnapshot manual: {:.1} s", t.elapsed().as_secs_f64());
    let (brev, bkvs) = etcdctl("byname", 1).everything();
    assert_eq!(bkvs, kvs, "the keys restored from EtcdSnapshot manual differ");
    assert!(brev >= rev, "restored revision {brev} < source {rev}");
    let both = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: both\n\
                spec:\n  restore:\n    snapshot: manual\n    key: x.db\n";
    let out = cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(both));
    assert!(
        out.stderr.contains("spec.restore needs either snapshot, or key and one of s3 and pvc"),
        "{out}"
    );

    // The restore is not changed once the cluster exists.
    let changed = restored.replace("manual.db", "other.db");
    let out = cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(&changed));
    assert!(out.stderr.contains("spec.restore cannot be changed"), "{out}");

    rig.stop().await;
}

/// The files under `dir` (relative paths), recursively.
fn files_under(dir: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.insert(rel.display().to_string());
            }
        }
    }
    out
}

/// `sha256sum <file>`'s hash.
fn sha256sum(file: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(file).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_to_a_claim_scheduled_and_pruned_then_restore_from_the_claim() {
    let rig = Rig::start("backup-pvc-test").await;
    let claim =
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: backups\nspec:\n  \
                 accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n";
    rig.apply(claim);
    let t = Instant::now();
    let src = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: vsrc\nspec:\n  replicas: 1\n";
    rig.apply(src);
    wait_ready(&rig.client(), "vsrc", 1).await;
    eprintln!("source cluster ready: {:.1} s", t.elapsed().as_secs_f64());
    let ctl = etcdctl("vsrc", 1);
    for i in 0..100 {
        ctl.run(&["put", &format!("app/{i:03}"), &format!("value {i} {}", "x".repeat(200))])
            .assert_success();
    }
    let grant = ctl.run(&["lease", "grant", "3600"]);
    let lease = grant.stdout.split_whitespace().nth(1).expect("lease id").to_string();
    ctl.run(&["put", "leased", "yes", "--lease", &lease]).assert_success();
    let (rev, kvs) = ctl.everything();

    // On demand, to the claim: a Job streams it, its result comes back through the pod's
    // termination message.
    let t = Instant::now();
    let snap = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdSnapshot\nmetadata:\n  name: to-claim\n\
                spec:\n  clusterRef: vsrc\n  destination:\n    prefix: rig\n    pvc:\n      \
                claimName: backups\n";
    rig.apply(snap);
    let snaps: Api<EtcdSnapshot> = Api::namespaced(rig.client(), NS);
    let (phase, done) = wait_some(WAIT, "the snapshot to the claim to finish", || async {
        let (p, s) = snapshot_status(&snaps, "to-claim").await?;
        (p == "Succeeded" || p == "Failed").then_some((p, s))
    })
    .await;
    let st = done.status.clone().expect("status");
    assert_eq!(phase, "Succeeded", "{st:?}");
    eprintln!("snapshot to the claim: {:.1} s, {st:?}", t.elapsed().as_secs_f64());
    assert_eq!(st.location.as_deref(), Some("pvc://backups/rig/default/vsrc/to-claim.db"));
    assert_eq!((st.revision, st.member.as_deref()), (Some(rev), Some("vsrc-0")));
    let dir = rig.kubelet.claim_dir(NS, "backups").expect("the claim's directory");
    let file = dir.join("rig/default/vsrc/to-claim.db");
    assert_eq!(std::fs::metadata(&file).map(|m| m.len() as i64).ok(), st.size);
    assert_eq!(Some(sha256sum(&file)), st.sha256, "the file on the claim is what was recorded");
    let sums = std::fs::read_to_string(dir.join("rig/default/vsrc/to-claim.db.sha256"));
    assert_eq!(sums.ok(), st.sha256.as_ref().map(|h| format!("{h}  to-claim.db\n")));

    // Scheduled every 2 s to the claim, keeping 1: older files are removed by Jobs, then
    // their objects go (the files left on the claim are checked below).
    let schedule = format!(
        "{src}  backup:\n    schedule: \"*/2 * * * * *\"\n    retention: 1\n    destination:\n      \
         prefix: rig\n      pvc:\n        claimName: backups\n"
    );
    rig.apply(&schedule);
    let lp = ListParams::default().labels("oxcd.dev/cluster=vsrc,oxcd.dev/scheduled=true");
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let most_at_once = std::sync::atomic::AtomicUsize::new(0);
    let jobs: Api<Job> = Api::namespaced(rig.client(), NS);
    let pruned = poll_some(WAIT, || {
        let (snaps, lp, seen, jobs) = (snaps.clone(), lp.clone(), &seen, jobs.clone());
        let most_at_once = &most_at_once;
        async move {
            // Snapshot Jobs of one cluster run one at a time.
            let of_vsrc = ListParams::default().labels("oxcd.dev/cluster=vsrc");
            let active = jobs.list(&of_vsrc).await.ok()?.items.into_iter().filter(|j| {
                let streaming = j.name_any().ends_with("-snapshot");
                streaming && j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0
            });
            most_at_once.fetch_max(active.count(), std::sync::atomic::Ordering::Relaxed);
            let list = snaps.list(&lp).await.ok()?.items;
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.extend(list.iter().map(|s| s.name_any()));
            let phase = |s: &EtcdSnapshot| s.status.as_ref().and_then(|st| st.phase.clone());
            let ok = list.iter().filter(|s| phase(s).as_deref() == Some("Succeeded")).count();
            // At least two were pruned: their objects are gone (after their files).
            (seen.len() >= 4 && ok == 1 && seen.len() >= list.len() + 2).then_some(())
        }
    })
    .await;
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(pruned.is_some(), "scheduled snapshots on the claim were not pruned to 1: {seen:?}");
    assert_eq!(most_at_once.into_inner(), 1, "snapshot Jobs of vsrc ran at once");
    rig.apply(src);
    // Then every snapshot finishes, and a prune once started finishes too (files, then object).
    let kept: BTreeSet<String> = wait_some(WAIT, "the schedule to settle", || async {
        let list = snaps.list(&lp).await.ok()?.items;
        let pruning = |s: &EtcdSnapshot| s.annotations().contains_key("oxcd.dev/pruning");
        let settled = list.iter().all(|s| s.is_done() && !pruning(s));
        let ok = |s: &&EtcdSnapshot| {
            s.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Succeeded")
        };
        settled.then(|| list.iter().filter(ok).map(|s| s.name_any()).collect())
    })
    .await;
    let want: BTreeSet<String> = kept
        .iter()
        .map(String::as_str)
        .chain(["to-claim"])
        .flat_map(|n| {
            [format!("rig/default/vsrc/{n}.db"), format!("rig/default/vsrc/{n}.db.sha256")]
        })
        .collect();
    let on_claim = wait_some(WAIT, "the pruned files to be removed", || async {
        let files = files_under(&dir);
        (files == want).then_some(files)
    })
    .await;
    eprintln!("scheduled snapshots seen: {}; on the claim: {on_claim:?}", seen.len());

    // A new three-member cluster restored from the file on the claim (path and sha256 given),
    // and a one-member one restored by naming the EtcdSnapshot.
    let t = Instant::now();
    let restored = format!(
        "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: vrestored\nspec:\n  \
         replicas: 3\n  restore:\n    pvc:\n      claimName: backups\n    key: \
         rig/default/vsrc/to-claim.db\n    sha256: {}\n",
        st.sha256.clone().unwrap_or_default()
    );
    rig.apply(&restored);
    wait_ready(&rig.client(), "vrestored", 3).await;
    eprintln!("restored from the claim, 3 ready members: {:.1} s", t.elapsed().as_secs_f64());
    let (rrev, rkvs) = etcdctl("vrestored", 3).everything();
    assert_eq!(rkvs, kvs, "the keys restored from the claim differ from the source's");
    assert_eq!(rrev, rev, "revision");
    for o in 0..3 {
        let one = member_ctl("vrestored", o);
        let got = poll_some(WAIT, || async {
            let out = one.run(&["get", "app/042", "--print-value-only", "--consistency=s"]);
            out.stdout.starts_with("value 42 ").then_some(())
        })
        .await;
        assert!(got.is_some(), "vrestored-{o} never served app/042");
    }
    let leases = etcdctl("vrestored", 3).run(&["lease", "list"]);
    assert!(leases.stdout.contains(&lease), "the lease is restored: {leases}");
    let t = Instant::now();
    let by_name = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: vbyname\n\
                   spec:\n  replicas: 1\n  restore:\n    snapshot: to-claim\n";
    rig.apply(by_name);
    wait_ready(&rig.client(), "vbyname", 1).await;
    eprintln!("restored from EtcdSnapshot to-claim: {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(etcdctl("vbyname", 1).everything(), (rev, kvs), "restored by name");
    // A restore naming both a claim and a bucket is refused.
    let both = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: both2\n\
                spec:\n  restore:\n    key: x.db\n    pvc:\n      claimName: backups\n    s3:\n      \
                bucket: b\n      credentialsSecret: s\n";
    let out = rig.cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(both));
    assert!(out.stderr.contains("or key and one of s3 and pvc"), "{out}");
    rig.stop().await;
}
