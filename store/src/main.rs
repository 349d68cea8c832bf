//! The `oxcd` binary: `oxcd snapshot ...` runs a tool (see `oxcd::tools`); otherwise parse
//! etcd's flags, set up logging, run the member until a signal.

use clap::Parser;
use oxcd::config::Config;

#[tokio::main]
async fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = oxcd::tools::dispatch(&args).await {
        std::process::exit(code);
    }
    let config = Config::parse();
    if let Err(e) = oxcd::logging::init(&config.logger, &config.log_level, &config.log_outputs) {
        eprintln!("oxcd: {e}");
        std::process::exit(1);
    }
    if let Err(e) = oxcd::serve::run(config, shutdown_signal()).await {
        // One line in etcd's manner, never a backtrace: this is an operator-facing error.
        eprintln!("oxcd: {e:#}");
        std::process::exit(1);
    }
    // `run` has stopped raft and synced the WAL; exit now rather than wait, in the runtime's
    // drop, for connections or blocking reads a client left behind.
    std::process::exit(0);
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
