//! Member-level behaviour of one server process: its flags (etcd's are all accepted, bad
//! values are refused at start-up), graceful shutdown with open streams, the metrics it
//! exposes, and `--max-request-bytes` reaching the watch fragment limit.
//!
//! Target: oxcd by default; `OXCD_E2E_TARGET=etcd` runs them against etcd 3.5.1 (the tests
//! of oxcd-only checks say so and skip there).

use std::time::Duration;

use etcd_client::{GetOptions, WatchOptions};
use oxcd_e2e::client::{bounded, connect};
use oxcd_e2e::server::{Kind, Member, MemberConfig};

fn start(cfg: MemberConfig) -> Member {
    Member::start_with(cfg)
}

/// SIGTERM with an open watch, lease keep-alive and snapshot stream ends the process
/// promptly (etcd exits in about 0.1 s), and everything acknowledged before is there after
/// a restart. oxcd once waited forever for the watch stream to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_open_streams_exits_promptly_and_keeps_data() {
    let mut m =
        tokio::task::spawn_blocking(|| start(MemberConfig::new(Kind::from_env()))).await.unwrap();
    let url = m.client_url();
    let mut c = connect(&url).await;
    let kept = bounded("open streams", async {
        // Enough data that the snapshot cannot be sent before the client reads it.
        let value = "v".repeat(10_000);
        for i in 0..300 {
            c.put(format!("term/{i:04}"), value.clone(), None).await.expect("put");
        }
        let watch = c.watch("term/", Some(WatchOptions::new().with_prefix())).await.unwrap();
        let lease = c.lease_grant(60, None).await.unwrap().id();
        let (keeper, keep_alives) = c.lease_keep_alive(lease).await.unwrap();
        let mut snapshot = c.snapshot().await.unwrap();
        let first = snapshot.message().await.unwrap().expect("first snapshot chunk");
        assert!(first.remaining_bytes() > 0, "the snapshot must still be streaming");
        (watch, keeper, keep_alives, snapshot)
    })
    .await;
    let took = tokio::task::block_in_place(|| m.terminate(Duration::from_secs(8)));
    drop(kept);
    let took =
        took.unwrap_or_else(|| panic!("still running 8 s after SIGTERM; log:\n{}", m.log_tail(30)));
    eprintln!("exited {} ms after SIGTERM", took.as_millis());
    tokio::task::block_in_place(|| m.restart());
    let mut c = connect(&url).await;
    let r = c.get("term/", Some(GetOptions::new().with_prefix().with_count_only())).await;
    assert_eq!(r.expect("count after restart").count(), 300, "puts acknowledged before SIGTERM");
}

/// Requests to methods the member does not serve all count under one label: a client that
/// makes up method names must not create a metric series per name. (etcd counts none.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_share_one_metric_label() {
    let m =
        tokio::task::spawn_blocking(|| start(MemberConfig::new(Kind::from_env()))).await.unwrap();
    tokio::task::block_in_place(|| {
        for i in 0..50 {
            m.http_post(&format!("/etcdserverpb.KV/MadeUp{i}"));
            m.http_post(&format!("/madeup{i}.Service/Range"));
        }
        let metrics = m.http_get("/metrics").expect("/metrics");
        let series: Vec<&str> =
            metrics.lines().filter(|l| l.contains("MadeUp") || l.contains("madeup")).collect();
        assert!(series.is_empty(), "series labeled by made-up names: {series:?}");
    });
}

/// Every flag etcd 3.5 (and 3.4) accepts starts the member, whether oxcd acts on it or not:
/// unit files written for etcd must work. Booleans may be bare or carry a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_flags_are_accepted() {
    let cfg = [
        "--enable-v2",
        "--enable-v2=true",
        "--pre-vote=true",
        "--strict-reconfig-check=false",
        "--metrics=basic",
        "--max-snapshots=3",
        "--max-wals=3",
        "--auth-token=simple",
        "--enable-pprof=false",
        "--socket-reuse-address",
        "--experimental-initial-corrupt-check=false",
        "--experimental-watch-progress-notify-interval=5s",
        "--backend-batch-interval=10ms",
        "--grpc-keepalive-min-time=5s",
        "--cors=*",
    ]
    .into_iter()
    .fold(MemberConfig::new(Kind::from_env()), |cfg, a| cfg.arg(a));
    let m = tokio::task::spawn_blocking(move || start(cfg)).await.unwrap();
    let mut c = connect(&m.client_url()).await;
    c.put("k", "v", None).await.expect("put on a member started with etcd's flags");
}

/// A flag value that cannot work is refused at start-up with a message naming the flag,
/// never accepted only to fail later inside a background task (oxcd's compactor once
/// panicked on a huge retention while the member kept serving without compaction).
/// oxcd only: etcd 3.5.1 overflows such a retention silently.
#[test]
fn bad_flag_values_are_refused_at_start() {
    if Kind::from_env() != Kind::Oxcd {
        eprintln!("skipped: etcd accepts these values");
        return;
    }
    for (flag, named) in [
        ("--auto-compaction-retention=99999999999999", "--auto-compaction-retention"),
        ("--auto-compaction-retention=bogus", "--auto-compaction-retention"),
        ("--election-timeout=100", "--election-timeout"),
    ] {
        let cfg = MemberConfig::new(Kind::Oxcd).arg(flag);
        match Member::try_start_with(cfg) {
            Ok(mut m) => {
                m.kill9();
                panic!("started with {flag}");
            }
            Err(e) => assert!(
                e.log_tail.contains(named) && e.message.contains("exited before ready"),
                "{flag}: expected a start-up error naming {named}, got: {e}"
            ),
        }
    }
}

/// `--max-request-bytes` sets the size at which a fragmenting watcher's responses are split
/// (the limit plus 512 KiB of gRPC overhead, as etcd computes it). With a 1 KiB limit, 700
/// puts of about 1 KiB replayed from history arrive in several responses; oxcd once kept
/// the default limit and sent them in one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_request_bytes_reaches_watch_fragments() {
    const PUTS: usize = 700;
    let cfg = MemberConfig::new(Kind::from_env()).arg("--max-request-bytes=1024");
    let m = tokio::task::spawn_blocking(move || start(cfg)).await.unwrap();
    let mut c = connect(&m.client_url()).await;
    bounded("max_request_bytes_reaches_watch_fragments", async {
        let value = "f".repeat(900);
        for i in 0..PUTS {
            c.put(format!("frag/{i:04}"), value.clone(), None).await.expect("put");
        }
        let opts = WatchOptions::new().with_prefix().with_start_revision(1).with_fragment();
        let mut stream = c.watch("frag/", Some(opts)).await.expect("watch");
        let (mut events, mut responses) = (0, 0);
        while events < PUTS {
            let resp = stream.message().await.expect("watch response").expect("stream open");
            if !resp.events().is_empty() {
                responses += 1;
                events += resp.events().len();
            }
        }
        assert_eq!(events, PUTS);
        assert!(responses > 1, "{PUTS} events of ~1 KiB in one response despite the 1 KiB limit");
    })
    .await;
}
