//! `oxcd-operator`: `run` the controller (leader election, `/metrics`, graceful shutdown on
//! SIGTERM), or print the `crd`.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "oxcd-operator", version, about = "Kubernetes operator for oxcd clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print the EtcdCluster CustomResourceDefinition (YAML).
    Crd,
}

#[derive(Parser)]
struct RunArgs {
    /// Address of the HTTP server for /metrics and /health.
    #[arg(long, env = "OXCD_OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "OXCD_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// Namespace of the leader-election Lease (default: the client's namespace).
    #[arg(long, env = "OXCD_OPERATOR_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "OXCD_OPERATOR_LEASE_NAME", default_value = "oxcd-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (default: POD_NAME, else host and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            print!("{}", oxcd_operator::crd::crd_yaml());
            Ok(())
        }
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            tokio::runtime::Runtime::new()?.block_on(run(args))
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context("connecting to Kubernetes")?;
    let identity = args.identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let opts = oxcd_operator::app::Options {
        metrics_addr: args.metrics_addr,
        namespace: args.namespace,
        lease_namespace: args.lease_namespace,
        lease_name: args.lease_name,
        identity,
    };
    oxcd_operator::app::run(client, opts, shutdown_signal()).await
}
