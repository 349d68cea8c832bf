//! The operator process's tasks belong to its run: dropping `app::run` mid-way (a crash, as
//! the rig tests simulate by aborting its task) stops its `/metrics` server too, instead of
//! leaving an orphan serving (and, once leading, a backup runner acting) for a dead operator.
//! No Kubernetes is needed: the metrics server starts before leader election, which keeps
//! retrying against an address where nothing listens.

use std::time::Duration;

use oxcd_e2e::http;

/// Whether `/metrics` answers at `addr` (blocking call off the runtime's workers).
async fn serving(addr: &str) -> bool {
    let addr = addr.to_string();
    let got = tokio::task::spawn_blocking(move || http::get(&addr, "/metrics")).await;
    got.ok().flatten().is_some_and(|(code, _)| code == 200)
}

/// Polls `cond` every 100 ms for up to 30 s.
async fn eventually<F: std::future::Future<Output = bool>>(mut cond: impl FnMut() -> F) -> bool {
    for _ in 0..300 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_stops_its_metrics_server() {
    let nowhere = format!("http://127.0.0.1:{}", oxcd_e2e::ports::free_port());
    let config = kube::Config::new(nowhere.parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let addr = format!("127.0.0.1:{}", oxcd_e2e::ports::free_port());
    let opts = oxcd_operator::app::Options {
        metrics_addr: addr.parse().expect("address"),
        namespace: None,
        lease_namespace: Some("default".into()),
        lease_name: "oxcd-operator".into(),
        identity: "dropped".into(),
    };
    let run = tokio::spawn(oxcd_operator::app::run(client, opts, std::future::pending()));
    assert!(eventually(|| serving(&addr)).await, "/metrics never answered");
    run.abort();
    assert!(run.await.is_err_and(|e| e.is_cancelled()));
    assert!(
        eventually(|| async { !serving(&addr).await }).await,
        "/metrics still answers after its run was dropped"
    );
}
