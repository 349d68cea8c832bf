//! `oxcd-operator`: `run` the controller (leader election, `/metrics`, graceful shutdown on
//! SIGTERM), print the `crd`, or play a part in backups inside a pod (`restore-member`,
//! `save-snapshot`, `remove-snapshot`).

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
    Crd {
        /// Print the EtcdSnapshot CRD instead.
        #[arg(long)]
        snapshot: bool,
    },
    /// Restore a member's data dir from a snapshot in S3 or in a file (the init container of a
    /// cluster with spec.restore; S3 credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    RestoreMember(RestoreArgs),
    /// Stream a member's snapshot into a file, with `<file>.sha256` beside it (the Job of an
    /// EtcdSnapshot to a PersistentVolumeClaim); prints the result as JSON.
    SaveSnapshot(SaveArgs),
    /// Remove a snapshot file and its `.sha256` (the Job pruning a snapshot on a claim).
    RemoveSnapshot {
        /// The snapshot file.
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

#[derive(Parser)]
struct SaveArgs {
    /// The member's client URL.
    #[arg(long)]
    endpoint: String,
    /// Where the snapshot goes.
    #[arg(long)]
    file: std::path::PathBuf,
    /// Also write the result (JSON), or the error, into this file: the container's
    /// terminationMessagePath, which the operator reads from the pod's status.
    #[arg(long)]
    result_file: Option<std::path::PathBuf>,
}

#[derive(Parser)]
struct RestoreArgs {
    /// The member's data dir; when it exists and is not empty, nothing is done.
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// The member's name.
    #[arg(long)]
    name: String,
    /// The cluster the restored member founds (`name=peer-url`).
    #[arg(long)]
    initial_cluster: String,
    /// The cluster token.
    #[arg(long)]
    initial_cluster_token: String,
    /// The member's peer URL.
    #[arg(long)]
    initial_advertise_peer_urls: String,
    /// Bucket of the snapshot file.
    #[arg(long, requires = "s3_key", conflicts_with = "file")]
    s3_bucket: Option<String>,
    /// Key of the snapshot file.
    #[arg(long, requires = "s3_bucket")]
    s3_key: Option<String>,
    /// The snapshot file itself (on a claim mounted by the init container).
    #[arg(long, required_unless_present = "s3_bucket")]
    file: Option<std::path::PathBuf>,
    /// Endpoint of an S3-compatible store other than AWS.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Region.
    #[arg(long)]
    s3_region: Option<String>,
    /// Expected SHA-256 (hex) of the file.
    #[arg(long)]
    sha256: Option<String>,
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
    /// Log lines as text, or as one JSON object per line (level, timestamp, target, message,
    /// span fields such as the cluster); the filter is RUST_LOG.
    #[arg(long, env = "OXCD_OPERATOR_LOG_FORMAT", value_enum, default_value_t)]
    log_format: oxcd_operator::logs::LogFormat,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { snapshot: false } => {
            print!("{}", oxcd_operator::crd::crd_yaml());
            Ok(())
        }
        Command::Crd { snapshot: true } => {
            print!("{}", oxcd_operator::backup::api::snapshot_crd_yaml());
            Ok(())
        }
        Command::RestoreMember(args) => {
            install_crypto();
            tokio::runtime::Runtime::new()?.block_on(restore_member(args))
        }
        Command::SaveSnapshot(args) => tokio::runtime::Runtime::new()?.block_on(save(args)),
        Command::RemoveSnapshot { file } => {
            for f in [file.clone(), oxcd_operator::backup::stream::sha256_file(&file)] {
                match std::fs::remove_file(&f) {
                    Ok(()) => println!("removed {}", f.display()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => anyhow::bail!("{}: {e}", f.display()),
                }
            }
            Ok(())
        }
        Command::Run(args) => {
            oxcd_operator::logs::init(args.log_format);
            install_crypto();
            tokio::runtime::Runtime::new()?.block_on(run(args))
        }
    }
}

/// rustls' process-wide crypto (ring), which HTTPS to an S3 store needs.
fn install_crypto() {
    // Already installed (by a dependency) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn save(a: SaveArgs) -> anyhow::Result<()> {
    let outcome = oxcd_operator::backup::stream::save_snapshot(&a.endpoint, &a.file).await;
    let text = match &outcome {
        Ok(stored) => serde_json::to_string(stored)?,
        Err(e) => e.to_string(),
    };
    if let Some(r) = &a.result_file {
        std::fs::write(r, &text).with_context(|| format!("writing {}", r.display()))?;
    }
    match outcome {
        Ok(_) => {
            println!("{text}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn restore_member(a: RestoreArgs) -> anyhow::Result<()> {
    use oxcd_operator::backup::{api::S3Bucket, restore};
    let source = match (a.s3_bucket, a.s3_key, a.file) {
        (Some(bucket), Some(key), _) => restore::Source::S3 {
            bucket: S3Bucket {
                bucket,
                endpoint: a.s3_endpoint,
                region: a.s3_region,
                credentials_secret: String::new(),
            },
            key,
        },
        (_, _, Some(file)) => restore::Source::File(file),
        _ => anyhow::bail!("give --s3-bucket and --s3-key, or --file"),
    };
    let r = restore::MemberRestore {
        data_dir: a.data_dir,
        name: a.name,
        initial_cluster: a.initial_cluster,
        initial_cluster_token: a.initial_cluster_token,
        initial_advertise_peer_urls: a.initial_advertise_peer_urls,
        source,
        sha256: a.sha256,
        oxcd: None,
    };
    match restore::restore_member(&r).await? {
        restore::Restored::AlreadyPresent => {
            println!("{} exists: nothing to restore", r.data_dir.display())
        }
        restore::Restored::Restored { size, sha256 } => println!(
            "restored {} ({size} bytes, sha256 {sha256}) into {}",
            r.source,
            r.data_dir.display()
        ),
    }
    Ok(())
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
