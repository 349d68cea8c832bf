//! The operator's migration call (`oxcd_operator::migration::migrate`, what a reconcile makes
//! for `spec.migration`) against a real oxcd member started with `--enable-v2`, its v2 keys
//! written with stock etcdctl 3.4 (`ETCDCTL_API=2`) and the v3 keys read back with etcdctl.

use oxcd_e2e::{CtlVersion, Etcdctl, Kind, Member, MemberConfig};
use oxcd_operator::migration::{migrate, MigrationError, MigrationSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_migration_converts_once_and_refuses_to_overwrite() {
    let m = Member::start_with(MemberConfig::new(Kind::Oxcd).arg("--enable-v2"));
    let v2 = Etcdctl::new(CtlVersion::V34, [m.client_url()]).api2();
    v2.run(&["set", "foo", "bar"]).assert_success();
    v2.run(&["mkdir", "dir"]).assert_success();
    v2.run(&["set", "dir/x", "1"]).assert_success();
    v2.run(&["set", "--ttl", "600", "ttl", "expiring"]).assert_success();
    let v3 = m.ctl(CtlVersion::V35);

    let spec = MigrationSpec::default();
    let done = migrate(&m.client_url(), &spec).await.expect("migrated");
    assert_eq!((done.keys, done.keys_with_ttl, done.leases, done.unchanged), (3, 1, 1, 0));
    let all = v3.run(&["get", "", "--prefix", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&all.stdout).expect("json");
    let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
    assert_eq!(kvs.len(), 3, "{all}");
    for kv in &kvs {
        assert_eq!(kv["mod_revision"].as_i64(), Some(done.revision), "one revision: {kv}");
    }
    assert_eq!(v3.run(&["get", "/foo", "--print-value-only"]).stdout, "bar\n");

    // Again: nothing to write (every key holds its v2 value).
    let again = migrate(&m.client_url(), &spec).await.expect("again");
    assert_eq!((again.keys, again.unchanged), (0, 3));

    // A v3 key changed since: refused, the store's words, nothing written.
    v3.run(&["put", "/foo", "changed in v3"]).assert_success();
    let refused = migrate(&m.client_url(), &spec).await.unwrap_err();
    match &refused {
        MigrationError::Refused(m) => assert!(
            m.starts_with("refusing to overwrite 1 existing v3 key(s), e.g. /foo"),
            "{refused}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(v3.run(&["get", "/foo", "--print-value-only"]).stdout, "changed in v3\n");

    // Nothing listening: a failure (retried), not a refusal.
    let gone = migrate("http://127.0.0.1:1", &spec).await.unwrap_err();
    assert!(matches!(gone, MigrationError::Failed(_)), "{gone:?}");
}
