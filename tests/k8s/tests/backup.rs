//! Backups and restore driven by resources, end to end on the rig: a real kube-apiserver and
//! kube-controller-manager, members as real `oxcd` processes under the process kubelet, the
//! operator in this process (`oxcd_operator::app::run`, the binary's code), moto as a real
//! S3-compatible server. One control plane, several steps:
//! an on-demand `EtcdSnapshot` → stored, checked, its status filled; a schedule every few seconds
//! → scheduled snapshots created and pruned to the retention (objects and files together); a new
//! `EtcdCluster` with `spec.restore` from the on-demand snapshot → three members serving every key
//! and the revision of the source.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use object_store::{ObjectStore, ObjectStoreExt};
use oxcd_e2e::etcdctl::{CtlVersion, Etcdctl};
use oxcd_e2e::s3::{S3Server, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use oxcd_k8s_rig::kubelet::{Kubelet, KubeletOptions};
use oxcd_k8s_rig::poll::{poll_some, wait_some};
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};
use oxcd_operator::backup::api::{EtcdSnapshot, S3Bucket};
use oxcd_operator::crd::EtcdCluster;
use serde_json::Value;

const NS: &str = "default";
const BUCKET: &str = "oxcd-backups";
/// Upper bound for any one condition (a loaded 2-core machine is slow).
const WAIT: Duration = Duration::from_secs(240);

async fn wait_ready(client: &Client, name: &str, n: usize) {
    let clusters: Api<EtcdCluster> = Api::namespaced(client.clone(), NS);
    wait_some(WAIT, &format!("{name} with {n} ready members"), || async {
        let s = clusters.get(name).await.ok()?.status?;
        let voters = s.members.iter().filter(|m| !m.learner && m.healthy).count();
        (s.phase.as_deref() == Some("Running") && voters == n && s.members.len() == n).then_some(())
    })
    .await;
}

/// etcdctl on a cluster's member names (always resolvable on the rig).
fn etcdctl(name: &str, n: u32) -> Etcdctl {
    let mut endpoints = vec![format!("http://{name}-client.{NS}.svc:2379")];
    endpoints.extend((0..n).map(|o| format!("http://{name}-{o}.{name}.{NS}.svc:2379")));
    Etcdctl::new(CtlVersion::V34, endpoints)
}

fn everything(ctl: &Etcdctl, prefix: &str) -> (i64, Value) {
    let out = ctl.run(&["get", prefix, "--prefix", "-w", "json"]);
    out.assert_success();
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    (v["header"]["revision"].as_i64().unwrap_or(0), v["kvs"].clone())
}

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
    let cp = ControlPlane::start(Options::new(StorageKind::Oxcd)).await.expect("control plane");
    let _kubelet = Kubelet::start(cp.client(), KubeletOptions::new(cp.dir().join("kubelet")))
        .await
        .expect("kubelet");
    let crds =
        oxcd_operator::crd::crd_yaml() + "---\n" + &oxcd_operator::backup::api::snapshot_crd_yaml();
    cp.kubectl_input(&["apply", "-f", "-"], Some(&crds)).assert_success();
    let crd_api: Api<CustomResourceDefinition> = Api::all(cp.client());
    for name in ["etcdclusters.oxcd.dev", "etcdsnapshots.oxcd.dev"] {
        wait_some(WAIT, &format!("CRD {name} established"), || async {
            let c = crd_api.get(name).await.ok()?;
            let ok = c
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            ok.then_some(())
        })
        .await;
    }
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(oxcd_operator::app::run(
        cp.client(),
        oxcd_operator::app::Options {
            metrics_addr: "127.0.0.1:0".parse().expect("address"),
            namespace: None,
            lease_namespace: Some(NS.into()),
            lease_name: "oxcd-operator".into(),
            identity: "backup-test".into(),
        },
        async move {
            let _ = rx.await;
        },
    ));

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
    let (rev, kvs) = everything(&ctl, "app/");

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
    let (rrev, rkvs) = everything(&rctl, "app/");
    assert_eq!(rkvs, kvs, "the restored keys differ from the source's");
    assert!(rrev >= rev, "restored revision {rrev} < source {rev}");
    // Every member gets the data (serializable reads on each member; a member that has just
    // joined may still be applying what it received).
    for o in 0..3 {
        let one =
            Etcdctl::new(CtlVersion::V34, [format!("http://restored-{o}.restored.{NS}.svc:2379")]);
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
    let (brev, bkvs) = everything(&etcdctl("byname", 1), "app/");
    assert_eq!(bkvs, kvs, "the keys restored from EtcdSnapshot manual differ");
    assert!(brev >= rev, "restored revision {brev} < source {rev}");
    let both = "apiVersion: oxcd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: both\n\
                spec:\n  restore:\n    snapshot: manual\n    key: x.db\n";
    let out = cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(both));
    assert!(out.stderr.contains("spec.restore needs either snapshot, or s3 and key"), "{out}");

    // The restore is not changed once the cluster exists.
    let changed = restored.replace("manual.db", "other.db");
    let out = cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(&changed));
    assert!(out.stderr.contains("spec.restore cannot be changed"), "{out}");

    let _ = stop.send(());
    let _ = operator.await;
}
