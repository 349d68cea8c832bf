//! The operator's member calls (`oxcd_operator::members`) against a real 3-member oxcd cluster
//! over TCP: status, list, move-leader, learner add/promote refusal/remove, remove, defragment.

use std::time::{Duration, Instant};

use oxcd_e2e::server::{Cluster, Kind};
use oxcd_operator::members;

/// The member that leads, by asking every member (waits out an election).
async fn leader(urls: &[String]) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for url in urls {
            if let Ok(s) = members::status(url).await {
                if s.leader == s.member_id && s.leader != 0 {
                    return (s.member_id, url.clone());
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader among {urls:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_calls_against_a_real_cluster() {
    let cluster = Cluster::start(Kind::from_env(), 3);
    let urls = cluster.client_urls();

    let mut ids = Vec::new();
    let mut cluster_ids = Vec::new();
    for url in &urls {
        let s = members::status(url).await.expect("status");
        assert!(!s.learner && s.errors.is_empty(), "{s:?}");
        ids.push(s.member_id);
        cluster_ids.push(s.cluster_id);
    }
    cluster_ids.dedup();
    assert_eq!(cluster_ids.len(), 1, "one cluster id");
    let listed = members::list(&urls[0]).await.expect("member list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|m| !m.learner && !m.name.is_empty()));

    // Leadership moves to the member asked for.
    let (old, endpoint) = leader(&urls).await;
    let target = *ids.iter().find(|id| **id != old).expect("a follower");
    members::move_leader(&endpoint, target).await.expect("move-leader");
    let (new, endpoint) = leader(&urls).await;
    assert_eq!(new, target);

    // A learner that never starts is added, refused promotion as not in sync, and removed.
    let learner = members::add_learner(&endpoint, "http://127.0.0.1:1").await.expect("add");
    let listed = members::list(&endpoint).await.expect("member list");
    assert!(listed.iter().any(|m| m.id == learner && m.learner && m.name.is_empty()));
    let refused = members::promote(&endpoint, learner).await.expect_err("promote must wait");
    assert!(members::is_learner_not_ready(&refused), "{refused}");
    members::remove(&endpoint, learner).await.expect("remove learner");

    // A follower is removed; two voters remain and keep serving.
    let follower = *ids.iter().find(|id| **id != new).expect("a follower");
    members::remove(&endpoint, follower).await.expect("remove follower");
    let listed = members::list(&endpoint).await.expect("member list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|m| m.id != follower));

    members::defragment(&endpoint).await.expect("defragment");

    // An unreachable endpoint fails fast with an error, not a hang.
    let t = Instant::now();
    assert!(members::status("http://127.0.0.1:1").await.is_err());
    assert!(t.elapsed() < Duration::from_secs(30));
}
