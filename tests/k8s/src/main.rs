//! `oxcd-rig`: starts the test control plane by hand (storage, kube-apiserver,
//! kube-controller-manager) and the process kubelet, and prints how to reach it; Ctrl-C stops
//! everything.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use oxcd_k8s_rig::kubelet::{ApiServerAccess, Kubelet, KubeletOptions};
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};

/// The store to run kube-apiserver on.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Storage {
    /// oxcd (`$OXCD_BIN` or the workspace's debug build)
    Oxcd,
    /// etcd 3.6 built by scripts/k8s-bins.sh
    Etcd,
}

/// Start kube-apiserver and kube-controller-manager on oxcd (or etcd 3.6) on 127.0.0.1.
#[derive(Parser, Debug)]
#[command(name = "oxcd-rig")]
struct Args {
    /// The store under kube-apiserver.
    #[arg(long, value_enum, default_value = "oxcd")]
    storage: Storage,
    /// Storage members.
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Start no process kubelet (it needs root: it manages /etc/hosts and namespaces).
    #[arg(long)]
    no_kubelet: bool,
    /// Keep the rig's directory (certificates, kubeconfig, logs) after stopping.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube-rs logs every failed request at ERROR: the readiness polls would flood the terminal.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let kind = match args.storage {
        Storage::Oxcd => StorageKind::Oxcd,
        Storage::Etcd => StorageKind::Etcd36,
    };
    eprintln!(
        "oxcd-rig: starting {} x{} + kube-apiserver + controllers ...",
        kind.label(),
        args.members
    );
    let cp = ControlPlane::start(Options::new(kind).members(args.members))
        .await
        .context("starting the control plane")?;
    let kubelet = if args.no_kubelet {
        None
    } else {
        let mut opts = KubeletOptions::new(cp.dir().join("kubelet"));
        opts.api_server = Some(
            ApiServerAccess::from_kubeconfig(cp.kubeconfig()).context("the admin kubeconfig")?,
        );
        Some(Kubelet::start(cp.client(), opts).await.context("starting the process kubelet")?)
    };
    println!("export KUBECONFIG={}", cp.kubeconfig().display());
    println!("# kube-apiserver: {}", cp.server_url());
    println!("# {} endpoints: {}", kind.label(), cp.storage_endpoints().join(","));
    println!("# logs: {}", cp.dir().display());
    println!("# Ctrl-C (or SIGTERM) stops everything");
    // SIGTERM too, so that `kill <pid>` also stops the children (Drop runs).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    drop(kubelet);
    if args.keep {
        let dir = cp.keep_dir();
        eprintln!("oxcd-rig: stopped; kept {}", dir.display());
    } else {
        drop(cp);
        eprintln!("oxcd-rig: stopped");
    }
    Ok(())
}
