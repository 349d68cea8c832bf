//! Tests through the `etcd-client` crate (0.21): the same ground as the
//! etcdctl differential tests (put/get with every range option, delete,
//! txn, watch, lease, lock, election, maintenance, errors), checked with
//! exact expected values instead of a reference run.
//!
//! Target: oxcd by default; `OXCD_E2E_TARGET=etcd` runs them against etcd
//! 3.5.1, which must pass (it validates the expectations).

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, LeaseGrantOptions,
    LeaseTimeToLiveOptions, LockOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};
use oxcd_e2e::client::{assert_grpc_err, bounded, connect, start_target};
use oxcd_e2e::Member;
use tonic::Code;

async fn setup() -> (Member, Client) {
    let m = tokio::task::spawn_blocking(start_target).await.expect("start server");
    let c = connect(&m.client_url()).await;
    (m, c)
}

fn keys(r: &etcd_client::GetResponse) -> Vec<String> {
    r.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).to_string()).collect()
}

fn rev<T>(h: Option<&etcd_client::ResponseHeader>, what: T) -> i64
where
    T: std::fmt::Display,
{
    h.unwrap_or_else(|| panic!("{what}: no header")).revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_put_get() {
    let (_m, mut c) = setup().await;
    bounded("kv_put_get", async {
        let r = c.put("foo", "bar", None).await.unwrap();
        assert_eq!(rev(r.header(), "put"), 2, "first write of a new store is revision 2");
        assert!(r.prev_key().is_none());
        let r = c.put("foo", "baz", Some(PutOptions::new().with_prev_key())).await.unwrap();
        assert_eq!(rev(r.header(), "put"), 3);
        let prev = r.prev_key().expect("prev kv");
        assert_eq!(prev.value(), b"bar");
        assert_eq!((prev.create_revision(), prev.mod_revision(), prev.version()), (2, 2, 1));

        let r = c.get("foo", None).await.unwrap();
        assert_eq!(r.count(), 1);
        assert!(!r.more());
        let kv = &r.kvs()[0];
        assert_eq!((kv.key(), kv.value()), (&b"foo"[..], &b"baz"[..]));
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease()),
            (2, 3, 2, 0)
        );
        let h = r.header().unwrap();
        assert_ne!(h.cluster_id(), 0);
        assert_ne!(h.member_id(), 0);
        assert!(h.raft_term() >= 1);
        assert_eq!(h.revision(), 3);

        // Old revisions.
        let r = c.get("foo", Some(GetOptions::new().with_revision(2))).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"bar");
        assert_eq!(rev(r.header(), "get"), 3, "header revision is the current one");
        let r = c.get("foo", Some(GetOptions::new().with_revision(1))).await.unwrap();
        assert_eq!(r.count(), 0);
        assert!(r.kvs().is_empty());

        // Serializable read.
        let r = c.get("foo", Some(GetOptions::new().with_serializable())).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"baz");

        // Missing key; empty value; binary data.
        let r = c.get("missing", None).await.unwrap();
        assert_eq!((r.count(), r.kvs().len()), (0, 0));
        c.put("empty", "", None).await.unwrap();
        let r = c.get("empty", None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"");
        let bin: Vec<u8> = (0u8..=255).collect();
        c.put(vec![0u8, 1, 255], bin.clone(), None).await.unwrap();
        let r = c.get(vec![0u8, 1, 255], None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), &bin[..]);

        // ignore_value / ignore_lease.
        c.put("foo", "", Some(PutOptions::new().with_ignore_value())).await.unwrap();
        let r = c.get("foo", None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"baz");
        assert_eq!(r.kvs()[0].version(), 3);
        assert_grpc_err(
            c.put("nokey", "", Some(PutOptions::new().with_ignore_value())).await,
            Code::InvalidArgument,
            "key not found",
        );
    })
    .await;
}

async fn seed(c: &mut Client) {
    // Revisions: p/c=2, p/a=3, p/b=4, p/e=5, p/d=6, q/x=7, p/a=8, p/a=9, p/e=10
    for (k, v) in [
        ("p/c", "1"),
        ("p/a", "3"),
        ("p/b", "2"),
        ("p/e", "0"),
        ("p/d", "5"),
        ("q/x", "9"),
        ("p/a", "4"),
        ("p/a", "6"),
        ("p/e", "7"),
    ] {
        c.put(k, v, None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_range_options() {
    let (_m, mut c) = setup().await;
    bounded("kv_range_options", async {
        seed(&mut c).await;
        let g = |o: GetOptions| Some(o);
        let r = c.get("p/", g(GetOptions::new().with_prefix())).await.unwrap();
        assert_eq!(keys(&r), ["p/a", "p/b", "p/c", "p/d", "p/e"]);
        assert_eq!(r.count(), 5);

        let r = c.get("p/", g(GetOptions::new().with_prefix().with_limit(2))).await.unwrap();
        assert_eq!(keys(&r), ["p/a", "p/b"]);
        assert_eq!(r.count(), 5, "count ignores the limit");
        assert!(r.more());

        let r = c.get("p/", g(GetOptions::new().with_prefix().with_limit(5))).await.unwrap();
        assert!(!r.more());

        let sorted = |t, o| GetOptions::new().with_prefix().with_sort(t, o);
        let cases = [
            (SortTarget::Key, SortOrder::Descend, ["p/e", "p/d", "p/c", "p/b", "p/a"]),
            (SortTarget::Create, SortOrder::Ascend, ["p/c", "p/a", "p/b", "p/e", "p/d"]),
            (SortTarget::Create, SortOrder::Descend, ["p/d", "p/e", "p/b", "p/a", "p/c"]),
            (SortTarget::Mod, SortOrder::Ascend, ["p/c", "p/b", "p/d", "p/a", "p/e"]),
            (SortTarget::Value, SortOrder::Ascend, ["p/c", "p/b", "p/d", "p/a", "p/e"]),
            (SortTarget::Value, SortOrder::Descend, ["p/e", "p/a", "p/d", "p/b", "p/c"]),
        ];
        for (t, o, want) in cases {
            let r = c.get("p/", g(sorted(t, o))).await.unwrap();
            assert_eq!(keys(&r), want, "sort {t:?} {o:?}");
        }
        // Version: p/a=3, p/e=2, others 1; ties keep key order.
        let r = c.get("p/", g(sorted(SortTarget::Version, SortOrder::Descend))).await.unwrap();
        assert_eq!(keys(&r)[..2], ["p/a", "p/e"]);
        let r = c
            .get("p/", g(sorted(SortTarget::Mod, SortOrder::Descend).with_limit(2)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["p/e", "p/a"], "sort then limit");

        let r = c.get("p/b", g(GetOptions::new().with_from_key())).await.unwrap();
        assert_eq!(keys(&r), ["p/b", "p/c", "p/d", "p/e", "q/x"]);
        let r = c.get("p/b", g(GetOptions::new().with_range("p/d"))).await.unwrap();
        assert_eq!(keys(&r), ["p/b", "p/c"]);
        let r = c.get("", g(GetOptions::new().with_all_keys())).await.unwrap();
        assert_eq!(r.count(), 6);

        let r = c.get("p/", g(GetOptions::new().with_prefix().with_keys_only())).await.unwrap();
        assert_eq!(r.kvs().len(), 5);
        assert!(r.kvs().iter().all(|kv| kv.value().is_empty()));
        assert_eq!(r.kvs()[0].mod_revision(), 9, "keys-only keeps metadata");

        let r = c.get("p/", g(GetOptions::new().with_prefix().with_count_only())).await.unwrap();
        assert_eq!(r.count(), 5);
        assert!(r.kvs().is_empty());

        // Revision filters.
        let r =
            c.get("p/", g(GetOptions::new().with_prefix().with_min_mod_revision(6))).await.unwrap();
        assert_eq!(keys(&r), ["p/a", "p/d", "p/e"]);
        let r = c
            .get("p/", g(GetOptions::new().with_prefix().with_max_create_revision(3)))
            .await
            .unwrap();
        assert_eq!(keys(&r), ["p/a", "p/c"]);

        // Range at an old revision.
        let r = c.get("p/", g(GetOptions::new().with_prefix().with_revision(4))).await.unwrap();
        assert_eq!(keys(&r), ["p/a", "p/b", "p/c"]);
        assert_eq!(r.kvs()[0].value(), b"3");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_delete() {
    let (_m, mut c) = setup().await;
    bounded("kv_delete", async {
        seed(&mut c).await;
        let r = c.delete("p/a", None).await.unwrap();
        assert_eq!(r.deleted(), 1);
        assert_eq!(rev(r.header(), "del"), 11);
        let r = c.delete("p/a", None).await.unwrap();
        assert_eq!(r.deleted(), 0);
        assert_eq!(rev(r.header(), "del"), 11, "deleting nothing does not bump the revision");
        let r = c.delete("p/b", Some(DeleteOptions::new().with_prev_key())).await.unwrap();
        assert_eq!(r.prev_kvs()[0].value(), b"2");
        let r =
            c.delete("p/", Some(DeleteOptions::new().with_prefix().with_prev_key())).await.unwrap();
        assert_eq!(r.deleted(), 3);
        assert_eq!(r.prev_kvs().len(), 3);
        assert_eq!(rev(r.header(), "del"), 13, "a range delete is one revision");
        let r = c.get("", Some(GetOptions::new().with_all_keys())).await.unwrap();
        assert_eq!(keys(&r), ["q/x"]);
        // The deleted key's history is still readable.
        let r = c.get("p/a", Some(GetOptions::new().with_revision(10))).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"6");
        // Re-created key restarts its version and create revision.
        c.put("p/a", "new", None).await.unwrap();
        let r = c.get("p/a", None).await.unwrap();
        assert_eq!((r.kvs()[0].version(), r.kvs()[0].create_revision()), (1, 14));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn() {
    let (_m, mut c) = setup().await;
    bounded("txn", async {
        c.put("user1", "bad", None).await.unwrap();
        let t = || {
            Txn::new()
                .when([Compare::value("user1", CompareOp::Equal, "bad")])
                .and_then([TxnOp::delete("user1", None)])
                .or_else([TxnOp::put("user1", "good", None)])
        };
        let r = c.txn(t()).await.unwrap();
        assert!(r.succeeded());
        assert_eq!(rev(r.header(), "txn"), 3);
        match &r.op_responses()[0] {
            TxnOpResponse::Delete(d) => assert_eq!(d.deleted(), 1),
            other => panic!("expected delete response, got {other:?}"),
        }
        let r = c.txn(t()).await.unwrap();
        assert!(!r.succeeded());
        let r = c.get("user1", None).await.unwrap();
        assert_eq!(r.kvs()[0].value(), b"good");

        // Every compare target and operator.
        c.put("k", "v2", None).await.unwrap(); // rev 5
        let id = c.lease_grant(60, None).await.unwrap().id();
        c.put("leased", "x", Some(PutOptions::new().with_lease(id))).await.unwrap(); // rev 6
        let cases = [
            (Compare::value("k", CompareOp::Greater, "v1"), true),
            (Compare::value("k", CompareOp::Less, "v1"), false),
            (Compare::value("k", CompareOp::NotEqual, "v2"), false),
            (Compare::version("k", CompareOp::Equal, 1), true),
            (Compare::version("nope", CompareOp::Equal, 0), true),
            (Compare::create_revision("k", CompareOp::Equal, 5), true),
            (Compare::mod_revision("k", CompareOp::Less, 5), false),
            (Compare::mod_revision("nope", CompareOp::Equal, 0), true),
            (Compare::lease("leased", CompareOp::Equal, id), true),
            (Compare::lease("k", CompareOp::Equal, 0), true),
            (Compare::value("p", CompareOp::Equal, "x").with_prefix(), true),
        ];
        c.put("p1", "x", None).await.unwrap();
        c.put("p2", "x", None).await.unwrap();
        for (i, (cmp, want)) in cases.into_iter().enumerate() {
            let r = c.txn(Txn::new().when([cmp])).await.unwrap();
            assert_eq!(r.succeeded(), want, "compare case {i}");
        }

        // Gets inside a txn see the txn's own earlier writes.
        let r = c
            .txn(Txn::new().and_then([
                TxnOp::put("a", "1", None),
                TxnOp::get("a", None),
                TxnOp::get("p", Some(GetOptions::new().with_prefix())),
            ]))
            .await
            .unwrap();
        let resps = r.op_responses();
        match (&resps[1], &resps[2]) {
            (TxnOpResponse::Get(a), TxnOpResponse::Get(p)) => {
                assert_eq!(a.kvs()[0].value(), b"1");
                assert_eq!(p.count(), 2);
            }
            other => panic!("unexpected responses {other:?}"),
        }
        let after = rev(r.header(), "txn");
        // A txn with writes is one revision; a read-only txn none.
        let r = c.txn(Txn::new().and_then([TxnOp::get("a", None)])).await.unwrap();
        assert_eq!(rev(r.header(), "txn"), after);
        // Nested txn.
        let r = c
            .txn(
                Txn::new().and_then([TxnOp::txn(
                    Txn::new()
                        .when([Compare::value("a", CompareOp::Equal, "1")])
                        .and_then([TxnOp::put("nested", "yes", None)]),
                )]),
            )
            .await
            .unwrap();
        assert!(r.succeeded());
        assert_eq!(c.get("nested", None).await.unwrap().kvs()[0].value(), b"yes");

        // Errors.
        assert_grpc_err(
            c.txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
                .await,
            Code::InvalidArgument,
            "duplicate key given in txn request",
        );
        let many: Vec<TxnOp> = (0..129).map(|i| TxnOp::put(format!("m{i}"), "v", None)).collect();
        assert_grpc_err(
            c.txn(Txn::new().and_then(many)).await,
            Code::InvalidArgument,
            "too many operations in txn request",
        );
    })
    .await;
}

async fn next_resp(w: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), w.message())
        .await
        .expect("watch response within 10 s")
        .expect("watch stream error")
        .expect("watch stream ended")
}

/// Collects `n` events (skipping empty/progress responses).
async fn events(
    w: &mut WatchStream,
    n: usize,
) -> Vec<(EventType, String, String, i64, Option<String>)> {
    let mut v = Vec::new();
    while v.len() < n {
        let r = next_resp(w).await;
        assert!(!r.canceled(), "watch canceled: {}", r.cancel_reason());
        for e in r.events() {
            let kv = e.kv().expect("event kv");
            v.push((
                e.event_type(),
                String::from_utf8_lossy(kv.key()).to_string(),
                String::from_utf8_lossy(kv.value()).to_string(),
                kv.mod_revision(),
                e.prev_kv().map(|p| String::from_utf8_lossy(p.value()).to_string()),
            ));
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch() {
    let (_m, mut c) = setup().await;
    bounded("watch", async {
        c.put("foo", "v1", None).await.unwrap(); // 2
        c.put("foo", "v2", None).await.unwrap(); // 3
        c.delete("foo", None).await.unwrap(); // 4

        // History from revision 1, then live events.
        let mut w = c
            .watch("foo", Some(WatchOptions::new().with_start_revision(1).with_prev_key()))
            .await
            .unwrap();
        let created = next_resp(&mut w).await;
        assert!(created.created());
        assert!(created.events().is_empty());
        let h = events(&mut w, 3).await;
        assert_eq!(
            h,
            vec![
                (EventType::Put, "foo".into(), "v1".into(), 2, None),
                (EventType::Put, "foo".into(), "v2".into(), 3, Some("v1".into())),
                (EventType::Delete, "foo".into(), "".into(), 4, Some("v2".into())),
            ]
        );
        c.put("foo", "v3", None).await.unwrap(); // 5
        assert_eq!(
            events(&mut w, 1).await[0],
            (EventType::Put, "foo".into(), "v3".into(), 5, None)
        );

        // A prefix watcher and a NoPut-filtered watcher on one stream.
        let mut p = c.watch("p/", Some(WatchOptions::new().with_prefix())).await.unwrap();
        let created = next_resp(&mut p).await;
        assert!(created.created());
        let first_id = created.watch_id();
        p.watch(
            "p/",
            Some(WatchOptions::new().with_prefix().with_filters([WatchFilterType::NoPut])),
        )
        .await
        .unwrap();
        let created = next_resp(&mut p).await;
        assert!(created.created());
        let second_id = created.watch_id();
        assert_ne!(first_id, second_id);
        c.put("p/1", "a", None).await.unwrap(); // 6
        c.put("q/1", "b", None).await.unwrap(); // 7
        c.delete("p/1", None).await.unwrap(); // 8
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let r = next_resp(&mut p).await;
            for e in r.events() {
                seen.push((r.watch_id(), e.event_type(), e.kv().unwrap().mod_revision()));
            }
        }
        seen.sort_by_key(|s| (s.0, s.2));
        assert_eq!(
            seen,
            vec![
                (first_id, EventType::Put, 6),
                (first_id, EventType::Delete, 8),
                (second_id, EventType::Delete, 8),
            ]
        );
        // Cancel.
        p.cancel(first_id).await.unwrap();
        let r = next_resp(&mut p).await;
        assert!(r.canceled());
        assert_eq!(r.watch_id(), first_id);

        // Progress request: an empty response carrying the current revision.
        w.request_progress().await.unwrap();
        let r = next_resp(&mut w).await;
        assert!(r.events().is_empty());
        assert_eq!(rev(r.header(), "progress"), 8);

        // Compacted start revision: the watch is canceled with the
        // compact revision.
        c.compact(5, None).await.unwrap();
        let mut old =
            c.watch("foo", Some(WatchOptions::new().with_start_revision(2))).await.unwrap();
        let mut r = next_resp(&mut old).await;
        if r.created() && !r.canceled() {
            r = next_resp(&mut old).await;
        }
        assert!(r.canceled());
        assert_eq!(r.compact_revision(), 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease() {
    let (_m, mut c) = setup().await;
    bounded("lease", async {
        let g = c.lease_grant(60, None).await.unwrap();
        assert_eq!(g.ttl(), 60);
        assert!(g.id() > 0);
        let id = g.id();
        let g2 = c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234))).await.unwrap();
        assert_eq!(g2.id(), 0x1234, "explicit lease ID is honoured");
        assert_grpc_err(
            c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234))).await,
            Code::FailedPrecondition,
            "lease already exists",
        );
        c.put("a", "1", Some(PutOptions::new().with_lease(id))).await.unwrap();
        c.put("b", "2", Some(PutOptions::new().with_lease(id))).await.unwrap();
        let r = c.get("a", None).await.unwrap();
        assert_eq!(r.kvs()[0].lease(), id);

        let t = c
            .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        assert_eq!(t.granted_ttl(), 60);
        assert!(t.ttl() > 50 && t.ttl() <= 60, "remaining ttl {}", t.ttl());
        let mut ks: Vec<&[u8]> = t.keys().iter().map(|k| &k[..]).collect();
        ks.sort();
        assert_eq!(ks, [&b"a"[..], &b"b"[..]]);

        let mut ids: Vec<i64> = c.leases().await.unwrap().leases().iter().map(|l| l.id()).collect();
        ids.sort();
        assert_eq!(ids, {
            let mut v = vec![id, 0x1234];
            v.sort();
            v
        });

        let (mut keeper, mut stream) = c.lease_keep_alive(id).await.unwrap();
        keeper.keep_alive().await.unwrap();
        let ka = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("keep-alive response")
            .unwrap()
            .unwrap();
        assert_eq!((ka.id(), ka.ttl()), (id, 60));

        let r = c.lease_revoke(id).await.unwrap();
        let revoke_rev = rev(r.header(), "revoke");
        let r = c.get("", Some(GetOptions::new().with_all_keys())).await.unwrap();
        assert_eq!(r.count(), 0);
        assert_eq!(rev(r.header(), "get"), revoke_rev);
        let t = c.lease_time_to_live(id, None).await.unwrap();
        assert_eq!(t.ttl(), -1, "revoked lease has ttl -1");
        assert_grpc_err(c.lease_revoke(id).await, Code::NotFound, "requested lease not found");
        assert_grpc_err(
            c.put("x", "y", Some(PutOptions::new().with_lease(999))).await,
            Code::NotFound,
            "requested lease not found",
        );

        // Expiry: minimum TTL is etcd's 2 s; a watcher sees the DELETE.
        let short = c.lease_grant(2, None).await.unwrap().id();
        c.put("tmp", "x", Some(PutOptions::new().with_lease(short))).await.unwrap();
        let mut w = c.watch("tmp", None).await.unwrap();
        assert!(next_resp(&mut w).await.created());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let ev = loop {
            let r = tokio::time::timeout_at(deadline, w.message())
                .await
                .expect("lease expiry within 15 s")
                .unwrap()
                .unwrap();
            if let Some(e) = r.events().first() {
                break e.event_type();
            }
        };
        assert_eq!(ev, EventType::Delete);
        assert_eq!(c.get("tmp", None).await.unwrap().count(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_election() {
    let (m, mut c) = setup().await;
    bounded("lock_and_election", async {
        let l1 = c.lease_grant(30, None).await.unwrap().id();
        let l2 = c.lease_grant(30, None).await.unwrap().id();
        let held = c.lock("mylock", Some(LockOptions::new().with_lease(l1))).await.unwrap();
        let key1 = held.key().to_vec();
        assert!(key1.starts_with(b"mylock/"));
        let mut c2 = connect(&m.client_url()).await;
        let waiter = tokio::spawn(async move {
            c2.lock("mylock", Some(LockOptions::new().with_lease(l2)))
                .await
                .map(|r| r.key().to_vec())
        });
        // Once the second locker's waiter key is queued behind the first, it must wait.
        let queued = GetOptions::new().with_prefix().with_count_only();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while c.get("mylock/", Some(queued.clone())).await.unwrap().count() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "second locker never queued");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!waiter.is_finished(), "second locker must wait");
        c.unlock(key1.clone()).await.unwrap();
        let key2 = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("second locker acquires after unlock")
            .unwrap()
            .unwrap();
        assert_ne!(key1, key2);
        c.unlock(key2).await.unwrap();

        // Election.
        let r = c.campaign("elec", "p1", l1).await.unwrap();
        let leader_key = r.leader().expect("leader key").clone();
        let l = c.leader("elec").await.unwrap();
        assert_eq!(l.kv().unwrap().value(), b"p1");
        c.proclaim(
            "p1b",
            Some(etcd_client::ProclaimOptions::new().with_leader(leader_key.clone())),
        )
        .await
        .unwrap();
        assert_eq!(c.leader("elec").await.unwrap().kv().unwrap().value(), b"p1b");
        c.resign(Some(etcd_client::ResignOptions::new().with_leader(leader_key))).await.unwrap();
        assert_grpc_err(c.leader("elec").await, Code::Unknown, "election: no leader");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance() {
    let (m, mut c) = setup().await;
    bounded("maintenance", async {
        c.put("k", "v", None).await.unwrap();
        let s = c.status().await.unwrap();
        let member_id = s.header().unwrap().member_id();
        assert_eq!(s.leader(), member_id, "single member is the leader");
        assert!(!s.version().is_empty());
        assert!(s.db_size() > 0);
        assert!(s.raft_index() >= s.raft_applied_index().min(1));
        assert!(!s.is_learner());

        let ml = c.member_list().await.unwrap();
        assert_eq!(ml.members().len(), 1);
        let me = &ml.members()[0];
        assert_eq!(me.id(), member_id);
        assert_eq!(me.name(), "n1");
        assert_eq!(me.client_urls(), [m.client_url()]);
        assert_eq!(me.peer_urls(), [m.peer_url()]);

        let alarms = c
            .alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
            .await
            .unwrap();
        assert!(alarms.alarms().is_empty());

        c.defragment().await.unwrap();
        let mut snap = c.snapshot().await.unwrap();
        let mut bytes = 0usize;
        while let Some(chunk) = snap.message().await.unwrap() {
            bytes += chunk.blob().len();
            if chunk.remaining_bytes() == 0 {
                break;
            }
        }
        assert!(bytes > 0, "snapshot is not empty");

        let h1 = c.hash_kv(0).await.unwrap().hash();
        let h2 = c.hash_kv(0).await.unwrap().hash();
        assert_eq!(h1, h2, "hash_kv is stable without writes");
        c.compact(2, Some(etcd_client::CompactionOptions::new().with_physical())).await.unwrap();
        assert_grpc_err(
            c.get("k", Some(GetOptions::new().with_revision(1))).await,
            Code::OutOfRange,
            "required revision has been compacted",
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors() {
    let (_m, mut c) = setup().await;
    bounded("errors", async {
        assert_grpc_err(c.put("", "v", None).await, Code::InvalidArgument, "key is not provided");
        assert_grpc_err(c.get("", None).await, Code::InvalidArgument, "key is not provided");
        c.put("k", "v", None).await.unwrap();
        assert_grpc_err(
            c.get("k", Some(GetOptions::new().with_revision(100))).await,
            Code::OutOfRange,
            "required revision is a future revision",
        );
        assert_grpc_err(
            c.compact(100, None).await,
            Code::OutOfRange,
            "required revision is a future revision",
        );
        c.compact(2, None).await.unwrap();
        assert_grpc_err(
            c.compact(2, None).await,
            Code::OutOfRange,
            "required revision has been compacted",
        );
        // Default --max-request-bytes is 1.5 MiB.
        let big = vec![b'x'; 1_700_000]; // above 1.5 MiB, below the 2 MiB gRPC limit
        assert_grpc_err(
            c.put("big", big, None).await,
            Code::InvalidArgument,
            "request is too large",
        );
        assert_grpc_err(c.lease_revoke(0x4242).await, Code::NotFound, "requested lease not found");
        assert_grpc_err(
            c.lease_grant(9_000_000_001, None).await,
            Code::OutOfRange,
            "too large lease TTL",
        );
    })
    .await;
}

/// Small differences from etcd that stock clients see: a lease's remaining TTL is rounded
/// down (299 s right after a 300 s grant), Lock without a lease holds the lock on a 60 s
/// session lease granted for the call (clients call it so), and Defragment and MoveLeader
/// answer without a header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_etcd_in_detail() {
    let (_m, mut c) = setup().await;
    bounded("answers_match_etcd_in_detail", async {
        let id = c.lease_grant(300, None).await.unwrap().id();
        let t = c.lease_time_to_live(id, None).await.unwrap();
        assert_eq!(t.granted_ttl(), 300);
        assert!((290..300).contains(&t.ttl()), "remaining TTL right after grant: {}", t.ttl());

        let held = c.lock("no-lease-lock", None).await.expect("lock without a lease");
        let got = c.get(held.key(), None).await.unwrap();
        let lease = got.kvs().first().expect("the lock's key").lease();
        assert_ne!(lease, 0, "the lock's key is attached to a session lease");
        let t = c.lease_time_to_live(lease, None).await.unwrap();
        assert_eq!(t.granted_ttl(), 60, "session lease TTL");
        c.unlock(held.key()).await.unwrap();

        assert!(c.defragment().await.unwrap().header().is_none(), "defragment header");
        let me = c.status().await.unwrap().header().unwrap().member_id();
        assert!(c.move_leader(me).await.unwrap().header().is_none(), "move-leader header");
    })
    .await;
}
