//! The operator's migration call (`oxcd_operator::migration::migrate`, what a reconcile makes
//! for `spec.migration`) against a real oxcd member started with `--enable-v2`, its v2 keys
//! written with stock etcdctl 3.4 (`ETCDCTL_API=2`) and the v3 keys read back with etcdctl.

use oxcd_e2e::{CtlVersion, Etcdctl, Kind, Member, MemberConfig};
use oxcd_operator::migration::{migrate, resumed, MigrationError, MigrationSpec};

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

/// The operator died after the store converted but before it recorded the answer: the next
/// one resumes (a call without overwrite) and the real store's answer is recorded as the
/// first call's result, not as a second conversion; nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_answer_was_lost_is_recorded_once_when_resumed() {
    let m = Member::start_with(MemberConfig::new(Kind::Oxcd).arg("--enable-v2"));
    let v2 = Etcdctl::new(CtlVersion::V34, [m.client_url()]).api2();
    for k in ["a", "b", "c"] {
        v2.run(&["set", k, &format!("value of {k}")]).assert_success();
    }
    let spec = MigrationSpec { overwrite: true, ..Default::default() };
    let lost = migrate(&m.client_url(), &spec).await.expect("the call whose answer is lost");
    assert_eq!(lost.keys, 3);
    let v3 = m.ctl(CtlVersion::V35);
    let before = v3.everything();

    let now = k8s_openapi::jiff::Timestamp::now();
    let check = MigrationSpec { overwrite: false, ..spec };
    let outcome = migrate(&m.client_url(), &check).await;
    let c = resumed(&outcome, &[], Some(1), now);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Migrated"), "{c:?}");
    assert!(c.message.contains("3 v2 keys found converted"), "{}", c.message);
    assert_eq!(v3.everything(), before, "the resumed call wrote nothing");

    // A v3 key changed after the lost call: the resume reports it, overwrites nothing.
    v3.run(&["put", "/a", "changed in v3"]).assert_success();
    let outcome = migrate(&m.client_url(), &check).await;
    let c = resumed(&outcome, &[], Some(1), now);
    assert_eq!(c.reason, "Refused", "{c:?}");
    assert_eq!(v3.run(&["get", "/a", "--print-value-only"]).stdout, "changed in v3\n");
}
