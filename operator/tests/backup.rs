//! Backups and restores against real servers: a real oxcd member (and real etcd 3.5.1) over
//! TCP, moto as a real S3-compatible server, the operator's backup code as the operator runs it
//! (`oxcd_operator::backup`), and the restored data read back with stock etcdctl.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use oxcd_e2e::bins;
use oxcd_e2e::client::connect;
use oxcd_e2e::s3::{S3Server, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use oxcd_e2e::{CtlVersion, Kind, Member, MemberConfig};
use oxcd_operator::backup::api::S3Bucket;
use oxcd_operator::backup::restore::{restore_member, MemberRestore, Restored, Source};
use oxcd_operator::backup::{store, stream, BackupError};
use serde_json::Value;

const BUCKET: &str = "backups";

fn bucket(s3: &S3Server) -> S3Bucket {
    S3Bucket {
        bucket: BUCKET.into(),
        endpoint: Some(s3.endpoint()),
        region: None,
        credentials_secret: "unused-here".into(),
    }
}

fn bucket_store(s3: &S3Server) -> std::sync::Arc<dyn ObjectStore> {
    let creds = store::Credentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
    };
    store::s3(&bucket(s3), &creds).expect("store")
}

/// The restore init container reads its credentials from the environment.
fn set_credentials_env() {
    // SAFETY (edition 2021: safe fn): set before any thread of this test reads them; every
    // test sets the same values.
    std::env::set_var("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
}

fn s3_source(s3: &S3Server, key: &str) -> Source {
    Source::S3 { bucket: bucket(s3), key: key.into() }
}

/// A member to restore into, with the harness's name and token.
fn restore_target(source: Source, sha256: Option<String>) -> (Member, MemberRestore) {
    let m = Member::create(MemberConfig::new(Kind::Oxcd));
    let r = MemberRestore {
        data_dir: m.data_dir(),
        name: "n1".into(),
        initial_cluster: m.initial_cluster().to_string(),
        initial_cluster_token: "oxcd-e2e".into(),
        initial_advertise_peer_urls: m.peer_url(),
        source,
        sha256,
        oxcd: Some(bins::oxcd()),
    };
    (m, r)
}

/// Writes `count` values of `value_bytes` under `prefix/` and a key on a fresh one-hour
/// lease; returns the lease id and the revision of the last write.
async fn fill(url: &str, prefix: &str, count: usize, value_bytes: usize) -> (i64, i64) {
    let mut c = connect(url).await;
    let value = vec![b'v'; value_bytes];
    for i in 0..count {
        c.put(format!("{prefix}/{i:04}"), value.clone(), None).await.expect("put");
    }
    let lease = c.lease_grant(3600, None).await.expect("lease").id();
    let opts = etcd_client::PutOptions::new().with_lease(lease);
    let last = c.put("leased", "yes", Some(opts)).await.expect("put");
    (lease, last.header().expect("header").revision())
}

/// The restored member serves what the source does: the revision, every key, and the lease
/// (`lease_hex`, as `etcdctl lease list` prints it).
fn assert_restored(source: &oxcd_e2e::Etcdctl, target: &Member, lease_hex: &str) {
    let (rev_a, kvs_a) = source.everything();
    let (rev_b, kvs_b) = target.ctl(CtlVersion::V35).everything();
    assert_eq!(rev_a, rev_b, "revision");
    assert!(kvs_a == kvs_b, "the restored keys differ");
    let leases = target.ctl(CtlVersion::V35).run(&["lease", "list"]);
    assert!(leases.stdout.contains(lease_hex), "{leases}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_streams_into_s3_verified_and_restores_a_member() {
    set_credentials_env();
    let s3 = S3Server::start("127.0.0.1");
    s3.create_bucket(BUCKET);
    let bucket_store = bucket_store(&s3);

    // 12 MiB of values (more than one 8 MiB part), and a lease with a key.
    let source = Member::start(Kind::Oxcd);
    let (lease, revision) = fill(&source.client_url(), "big", 200, 64 << 10).await;

    let key = Path::from("ns/src/src-1.db");
    let stored = stream::upload_snapshot(&source.client_url(), bucket_store.as_ref(), &key)
        .await
        .expect("upload");
    eprintln!("snapshot of {} bytes at revision {} stored", stored.size, stored.revision);
    assert!(stored.size > 12 << 20, "{stored:?}");
    assert_eq!(stored.revision, revision);
    assert_eq!(bucket_store.head(&key).await.expect("head").size, stored.size);

    // Downloaded: the same bytes, and a file `oxcd snapshot status` reads at that revision.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let (size, sha) = stream::download(bucket_store.as_ref(), &key, &file, Some(&stored.sha256))
        .await
        .expect("download");
    assert_eq!((size, sha.as_str()), (stored.size, stored.sha256.as_str()));
    let status = std::process::Command::new(bins::oxcd())
        .args(["snapshot", "status", "-w", "json"])
        .arg(&file)
        .output()
        .expect("oxcd snapshot status");
    let status: Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(status["revision"].as_i64(), Some(revision), "{status}");

    // A wrong checksum is refused and leaves nothing behind.
    let bad = dir.path().join("bad.db");
    let err = stream::download(bucket_store.as_ref(), &key, &bad, Some(&"0".repeat(64)))
        .await
        .expect_err("a wrong sha256 must be refused");
    assert!(matches!(err, BackupError::Corrupt(_)), "{err}");
    assert!(!bad.exists() && !bad.with_extension("part").exists());

    // The init container's restore: the member comes up with every key, revision and lease.
    let (mut target, r) = restore_target(s3_source(&s3, key.as_ref()), Some(stored.sha256.clone()));
    let done = restore_member(&r).await.expect("restore");
    assert_eq!(done, Restored::Restored { size: stored.size, sha256: stored.sha256.clone() });
    // Run again (a restarted init container): the data dir is there, nothing is done.
    assert_eq!(restore_member(&r).await.expect("again"), Restored::AlreadyPresent);
    target.launch().expect("oxcd on the restored data dir");
    assert_restored(&source.ctl(CtlVersion::V35), &target, &format!("{lease:x}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_snapshot_in_s3_restores_into_an_oxcd_member() {
    set_credentials_env();
    let s3 = S3Server::start("127.0.0.1");
    s3.create_bucket(BUCKET);
    let bucket_store = bucket_store(&s3);

    // An existing etcd 3.5.1 and its `etcdctl snapshot save`.
    let etcd = Member::start(Kind::Etcd35);
    let ctl = etcd.ctl(CtlVersion::V35);
    for i in 0..300 {
        ctl.run(&["put", &format!("k/{i:03}"), &format!("value {i}")]).assert_success();
        if i % 100 == 99 {
            ctl.run(&["del", &format!("k/{:03}", i - 1)]).assert_success();
        }
    }
    let grant = ctl.run(&["lease", "grant", "3600"]);
    let lease = grant.stdout.split_whitespace().nth(1).expect("lease id").to_string();
    ctl.run(&["put", "leased", "yes", "--lease", &lease]).assert_success();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcd.db");
    ctl.run(&["snapshot", "save", &file.display().to_string()]).assert_success();

    // Moved to the bucket, then restored by the init container's code without a known sha256
    // (the file's own trailer is still checked by `oxcd snapshot restore`).
    let key = Path::from("migrate/etcd.db");
    let bytes = std::fs::read(&file).expect("snapshot file");
    bucket_store.put(&key, PutPayload::from(bytes)).await.expect("put");
    let (mut target, r) = restore_target(s3_source(&s3, key.as_ref()), None);
    assert!(matches!(restore_member(&r).await.expect("restore"), Restored::Restored { .. }));
    target.launch().expect("oxcd on the restored data dir");
    assert_restored(&ctl, &target, &lease);
}

/// The PersistentVolumeClaim path: what a snapshot Job's pod runs (`save_snapshot` into a
/// file on the claim) and what the restoring init container runs (`Source::File`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_saved_to_a_file_with_its_sha256_restores_a_member() {
    let source = Member::start(Kind::Oxcd);
    let (lease, revision) = fill(&source.client_url(), "app", 100, 16 << 10).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ns/src/nightly.db");
    let stored = stream::save_snapshot(&source.client_url(), &file).await.expect("save");
    eprintln!("snapshot of {} bytes at revision {} saved", stored.size, stored.revision);
    assert_eq!(stored.revision, revision);
    assert_eq!(std::fs::metadata(&file).expect("file").len(), stored.size);
    let sums = std::fs::read_to_string(dir.path().join("ns/src/nightly.db.sha256")).unwrap();
    assert_eq!(sums, format!("{}  nightly.db\n", stored.sha256));
    // The checksum file is the format `sha256sum -c` reads.
    let check = std::process::Command::new("sha256sum")
        .args(["-c", "nightly.db.sha256"])
        .current_dir(dir.path().join("ns/src"))
        .output()
        .expect("sha256sum");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    assert!(!dir.path().join("ns/src/nightly.db.part").exists());

    // A member that does not answer: an error and no file.
    let nothing = dir.path().join("ns/src/none.db");
    let err = stream::save_snapshot("http://127.0.0.1:1", &nothing).await.expect_err("no member");
    assert!(matches!(err, BackupError::Etcd { .. } | BackupError::Timeout(_)), "{err}");
    assert!(!nothing.exists() && !nothing.with_extension("db.part").exists());

    // Restored from the file: a wrong sha256 is refused with nothing left behind, the right
    // one gives every key, the revision and the lease.
    let (_, bad) = restore_target(Source::File(file.clone()), Some("0".repeat(64)));
    let err = restore_member(&bad).await.expect_err("a wrong sha256 must be refused");
    assert!(matches!(err, BackupError::Corrupt(_)), "{err}");
    assert!(!bad.data_dir.exists(), "nothing restored");
    let (mut target, r) = restore_target(Source::File(file.clone()), Some(stored.sha256.clone()));
    let done = restore_member(&r).await.expect("restore");
    assert_eq!(done, Restored::Restored { size: stored.size, sha256: stored.sha256.clone() });
    target.launch().expect("oxcd on the restored data dir");
    assert_restored(&source.ctl(CtlVersion::V35), &target, &format!("{lease:x}"));
}
