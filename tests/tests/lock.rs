//! Differential tests of `etcdctl lock` and `etcdctl elect`: two contenders
//! on one lock, the second acquiring it once the first is killed (kill -9:
//! after its session lease expires; SIGINT: at once); lock with an exec
//! command; leader election with an observer.
//!
//! Lock and election keys end in the holder's lease ID, printed in hex
//! without leading zeros: they are masked with `Normalizer::id_after`.

use std::time::Duration;

use oxcd_e2e::differential;

#[test]
fn second_contender_gets_lock_after_first_is_killed() {
    differential("lock::two_contenders_kill9", |s| {
        s.normalizer().id_after("mylock/");
        let mut a = s.spawn(&["lock", "--ttl=2", "mylock"]);
        let got_a = a.next_line(Duration::from_secs(15)).unwrap_or_default();
        s.record("first contender holds", &got_a);
        let mut b = s.spawn(&["lock", "--ttl=2", "mylock"]);
        s.wait_connected(&mut b);
        let early = b.next_line(Duration::from_millis(1500));
        s.check("second contender blocked while first holds", early.is_none());
        // Both contenders have a key (their order depends on lease ID values,
        // which are opaque, so only the count is compared).
        let keys = s.etcdctl().run(&["get", "mylock", "--prefix", "--keys-only"]);
        let n = keys.stdout.lines().filter(|l| !l.is_empty()).count();
        s.record("number of keys under mylock/", &n.to_string());
        // kill -9: the first session's lease is not revoked and must expire
        // (TTL 2 s) before the second contender gets the lock.
        a.kill();
        let got_b = b.next_line(Duration::from_secs(20)).unwrap_or_default();
        s.record("second contender holds", &got_b);
        s.ctl(&["get", "mylock", "--prefix", "--keys-only"]);
        // SIGINT releases the lock (session revoked) and exits 0.
        b.interrupt();
        let code = b.wait_exit(Duration::from_secs(10));
        s.record("second contender exit after SIGINT", &format!("{code:?}"));
        s.ctl(&["get", "mylock", "--prefix", "--keys-only"]);
    });
}

#[test]
fn release_on_interrupt_and_exec() {
    differential("lock::release_on_interrupt_and_exec", |s| {
        s.normalizer().id_after("l2/");
        let mut a = s.spawn(&["lock", "l2"]);
        let got_a = a.next_line(Duration::from_secs(15)).unwrap_or_default();
        s.record("first contender holds", &got_a);
        let mut b = s.spawn(&["lock", "l2", "--", "echo", "got it"]);
        s.wait_connected(&mut b);
        s.check("exec contender still waiting", b.next_line(Duration::from_millis(500)).is_none());
        a.interrupt();
        let code = b.wait_exit(Duration::from_secs(15));
        let lines = b.drain(Duration::from_millis(300), Duration::from_secs(2));
        s.record_lines("exec-command output", &lines);
        s.record("exec-command exit", &format!("{code:?}"));
        s.ctl(&["lock", "l2", "--", "sh", "-c", "echo inside; exit 3"]);
        s.ctl(&["get", "l2", "--prefix", "--keys-only"]);
    });
}

#[test]
fn election() {
    differential("lock::election", |s| {
        s.normalizer().id_after("myelection/");
        let mut a = s.spawn(&["elect", "myelection", "p1"]);
        let lines = a.lines(2, Duration::from_secs(15));
        s.record_lines("first candidate is leader", &lines);
        let mut observer = s.spawn(&["elect", "-l", "myelection"]);
        let lines = observer.lines(2, Duration::from_secs(15));
        s.record_lines("observer sees", &lines);
        let mut b = s.spawn(&["elect", "myelection", "p2"]);
        s.wait_connected(&mut b);
        let early = b.next_line(Duration::from_millis(1000));
        s.check("second candidate waits", early.is_none());
        // SIGINT makes the first leader resign.
        a.interrupt();
        let lines = b.lines(2, Duration::from_secs(20));
        s.record_lines("second candidate is leader", &lines);
        let lines = observer.lines(2, Duration::from_secs(15));
        s.record_lines("observer sees", &lines);
        s.ctl(&["get", "myelection", "--prefix"]);
    });
}

/// Lock through every member of a 3-member cluster, two of them followers: each holder
/// increments a counter with a read and a write while it holds the lock, so a lock granted
/// to two callers at once (or a waiter key read before the member applied it) loses an
/// increment. Each granted key must be the owner (lowest create revision) when it is
/// granted. Runs against etcd too (`OXCD_E2E_TARGET`).
#[test]
fn lock_through_followers_excludes() {
    use oxcd_e2e::client::{bounded, connect};
    use oxcd_e2e::server::{Cluster, Kind};
    const ROUNDS: usize = 8;
    let cluster = Cluster::start(Kind::from_env(), 3);
    let urls = cluster.client_urls();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(bounded("lock_through_followers_excludes", async move {
        let mut c = connect(&urls[0]).await;
        c.put("ctr", "0", None).await.expect("put counter");
        let tasks: Vec<_> = urls
            .iter()
            .cloned()
            .map(|url| {
                tokio::spawn(async move {
                    let mut c = connect(&url).await;
                    for _ in 0..ROUNDS {
                        let lease = c.lease_grant(30, None).await.expect("grant").id();
                        let opts = etcd_client::LockOptions::new().with_lease(lease);
                        let key =
                            c.lock("ctr-lock", Some(opts)).await.expect("lock").key().to_vec();
                        let owner = c
                            .get(
                                "ctr-lock/",
                                Some(
                                    etcd_client::GetOptions::new()
                                        .with_prefix()
                                        .with_sort(
                                            etcd_client::SortTarget::Create,
                                            etcd_client::SortOrder::Ascend,
                                        )
                                        .with_limit(1),
                                ),
                            )
                            .await
                            .expect("owner");
                        assert_eq!(
                            owner.kvs().first().map(|kv| kv.key().to_vec()),
                            Some(key.clone()),
                            "{url}: granted a lock that is not the owner"
                        );
                        let got = c.get("ctr", None).await.expect("get counter");
                        let n: u64 = got.kvs()[0].value_str().expect("utf-8").parse().expect("n");
                        c.put("ctr", (n + 1).to_string(), None).await.expect("put counter");
                        c.unlock(key).await.expect("unlock");
                        c.lease_revoke(lease).await.expect("revoke");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("locker");
        }
        let got = c.get("ctr", None).await.expect("get counter");
        assert_eq!(got.kvs()[0].value_str().expect("utf-8"), (3 * ROUNDS).to_string());
    }));
}
