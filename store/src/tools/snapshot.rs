//! `oxcd snapshot save|status|restore`: the command line over `crate::snapshot_file`, with
//! etcdutl's flags (`restore`, `status`, `-w`) and etcdctl's (`save`, `--endpoints`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};

use super::fail;
use crate::config::Config;
use crate::snapshot_file::restore::{restore, RestoreConfig};
use crate::snapshot_file::status::{humanize_bytes, status, Format};

/// `oxcd snapshot`.
#[derive(Parser, Debug)]
#[command(name = "oxcd snapshot", about = "Manages etcd snapshot files")]
struct SnapshotCli {
    /// Output format of `status`.
    #[arg(short = 'w', long = "write-out", global = true, value_enum, default_value = "simple")]
    write_out: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Stores a member's snapshot (oxcd or etcd) in a file.
    Save {
        /// The file to write.
        filename: PathBuf,
        /// The one member to ask (`host:port` or a URL).
        #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
        endpoints: Vec<String>,
        /// How long to wait for the connection (a Go duration such as `2s`).
        #[arg(long, default_value = "2s")]
        dial_timeout: String,
        /// `name:password`, as etcdctl's `--user`, for a member with auth enabled.
        #[arg(long)]
        user: Option<String>,
    },
    /// Prints a snapshot file's hash, revision, key count and size, as etcdutl does.
    Status {
        /// The snapshot file.
        filename: PathBuf,
    },
    /// Creates an oxcd data dir from a snapshot file of etcd or oxcd.
    Restore {
        /// The snapshot file.
        filename: PathBuf,
        /// The data dir to create (default `<name>.oxcd`, as `oxcd` defaults).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// This member's name.
        #[arg(long, default_value = "default")]
        name: String,
        /// The restored cluster's members (`name=peer-url,...`).
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// The restored cluster's token.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// This member's peer URLs.
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        /// Accept a file whose hash trailer is missing or wrong (a copied `member/snap/db`).
        #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "false")]
        skip_hash_check: bool,
        /// etcd's separate WAL directory; oxcd keeps none, so only its absence is accepted.
        #[arg(long)]
        wal_dir: Option<PathBuf>,
    },
}

/// Runs `oxcd snapshot ...` (`args[0]` is `snapshot`); returns the exit code.
pub async fn run(args: &[OsString]) -> i32 {
    let cli = match SnapshotCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    match cli.command {
        Command::Save { filename, endpoints, dial_timeout, user } => {
            if endpoints.len() != 1 {
                return fail(format!(
                    "snapshot must be requested to one selected node, not multiple {endpoints:?}"
                ));
            }
            let Some(dial) = crate::config::parse_duration(&dial_timeout) else {
                return fail(format!("invalid --dial-timeout {dial_timeout:?}"));
            };
            let started = Instant::now();
            match crate::snapshot_file::save::save(&endpoints[0], &filename, dial, user.as_deref())
                .await
            {
                Ok(saved) => {
                    eprintln!(
                        "fetched snapshot from {}: {} in {:.1?}",
                        endpoints[0],
                        humanize_bytes(saved.bytes),
                        started.elapsed()
                    );
                    println!("Snapshot saved at {}", filename.display());
                    0
                }
                Err(e) => fail(e),
            }
        }
        Command::Status { filename } => {
            let format = cli.write_out;
            match tokio::task::spawn_blocking(move || status(&filename)).await {
                Ok(Ok(s)) => {
                    print!("{}", s.render(format));
                    0
                }
                Ok(Err(e)) => fail(e),
                Err(e) => fail(e),
            }
        }
        Command::Restore {
            filename,
            data_dir,
            name,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
            wal_dir,
        } => {
            if wal_dir.is_some() {
                return fail("--wal-dir: oxcd keeps its log in the data dir; leave it out");
            }
            // The member's own flag handling, so that the data dir default and the
            // `--initial-cluster` parsing are the ones `oxcd` itself will apply.
            let mut flags: Vec<OsString> = vec![
                "oxcd".into(),
                format!("--name={name}").into(),
                format!("--initial-cluster={initial_cluster}").into(),
                format!("--initial-cluster-token={initial_cluster_token}").into(),
                format!("--initial-advertise-peer-urls={initial_advertise_peer_urls}").into(),
            ];
            if let Some(d) = &data_dir {
                let mut flag = OsString::from("--data-dir=");
                flag.push(d.as_os_str());
                flags.push(flag);
            }
            let config = match Config::try_parse_from(flags) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let initial = match config.initial_members() {
                Ok(m) => m,
                Err(e) => return fail(e),
            };
            let cfg = RestoreConfig {
                snapshot: filename,
                data_dir: config.data_dir(),
                name,
                initial_cluster: initial,
                token: initial_cluster_token,
                peer_urls: Config::urls(&initial_advertise_peer_urls),
                skip_hash_check,
            };
            let started = Instant::now();
            let job = cfg.clone();
            match tokio::task::spawn_blocking(move || restore(&job)).await {
                Ok(Ok(r)) => {
                    eprintln!(
                        "restored snapshot {} ({}) into {} in {:.1?}: revision {}, compacted {}, \
                         {} key revisions, {} leases, {} users, {} roles, auth {}; \
                         member {:x} of cluster {:x} ({} members)",
                        cfg.snapshot.display(),
                        humanize_bytes(r.snapshot_bytes),
                        cfg.data_dir.display(),
                        started.elapsed(),
                        r.revision,
                        r.compacted,
                        r.revisions,
                        r.leases,
                        r.users,
                        r.roles,
                        if r.auth_enabled { "enabled" } else { "disabled" },
                        r.member_id,
                        r.cluster_id,
                        r.members.len(),
                    );
                    0
                }
                Ok(Err(e)) => fail(e),
                Err(e) => fail(e),
            }
        }
    }
}
