//! The operator process minus its command line: the `/metrics` and `/health` server, leader
//! election, then the controller, all stopped by one shutdown future (SIGTERM in `main`, any
//! future in tests). Losing the Lease stops the controller at once and returns an error.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use crate::controller::{self, Context};
use crate::leader::Elector;
use crate::metrics::Metrics;

/// How long a shutdown waits for running reconciles before it releases the Lease anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address of the HTTP server for `/metrics` and `/health`.
    pub metrics_addr: SocketAddr,
    /// Watch only this namespace (None: all).
    pub namespace: Option<String>,
    /// Namespace of the leader-election Lease (None: the client's default namespace).
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// This replica's identity in the Lease.
    pub identity: String,
}

/// A task owned by one [`run`]: aborted when dropped, so that when `run` is dropped mid-way
/// (a crash in tests, a runtime shutting down) its `/metrics` server, signal watcher and backup
/// runner stop with it instead of serving and acting on as orphans.
struct Owned<T>(tokio::task::JoinHandle<T>);

impl<T> Owned<T> {
    fn spawn(f: impl Future<Output = T> + Send + 'static) -> Owned<T>
    where
        T: Send + 'static,
    {
        Owned(tokio::spawn(f))
    }

    /// Waits for the task to end by itself.
    async fn join(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs until `shutdown` resolves (then releases the Lease) or the Lease is lost (error).
/// Everything it starts stops when it returns or is dropped.
pub async fn run(
    client: kube::Client,
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let listener = tokio::net::TcpListener::bind(opts.metrics_addr)
        .await
        .with_context(|| format!("listen on {}", opts.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr()?, identity = %opts.identity, "serving /metrics");
    let m = metrics.clone();
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(move || async move { m.render() }))
        .route("/health", axum::routing::get(|| async { "ok" }));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let http_stop = stopped();
    let http = Owned::spawn(async move {
        axum::serve(listener, router).with_graceful_shutdown(http_stop).await
    });
    let signal = Owned::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let lease_ns =
        opts.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let elector = Elector::new(client.clone(), &lease_ns, &opts.lease_name, &opts.identity);
    tokio::select! {
        _ = elector.acquire() => {}
        _ = stopped() => {
            http.join().await;
            return Ok(());
        }
    }
    tracing::info!(lease = %format!("{lease_ns}/{}", opts.lease_name), "leading");
    metrics.is_leader.set(1);

    // Backups run beside the controller, only while leading.
    let backups =
        Owned::spawn(crate::backup::runner::run(client.clone(), opts.namespace.clone(), stopped()));
    let ctx = Arc::new(Context::new(client, metrics.clone(), &opts.identity));
    // On shutdown the controller finishes its running reconciles; one stuck on a member that
    // does not answer is cut off after SHUTDOWN_GRACE (its step is re-planned by the next
    // leader from the objects, as after a crash).
    let grace = async {
        stopped().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let lost = tokio::select! {
        r = controller::run(ctx, opts.namespace.clone(), stopped()) => { r?; false }
        _ = elector.hold() => true,
        _ = grace => false,
    };
    metrics.is_leader.set(0);
    drop(backups);
    drop(signal);
    if lost {
        // Another replica may act now: stop at once (a Deployment restarts us as a standby).
        anyhow::bail!("lost the leader-election Lease");
    }
    elector.release().await;
    http.join().await;
    Ok(())
}
