//! The automatic compactor (`--auto-compaction-mode/retention`): the leader proposes
//! compactions so history does not grow without bound, as etcd's `v3compactor`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::AutoCompaction;
use crate::member::server::EtcdServer;
use crate::pb::etcdserverpb::CompactionRequest;
use crate::pb::oxcdpb::internal_request::Request as Cmd;

/// Runs until shutdown; does nothing when auto compaction is off.
pub async fn run(server: EtcdServer, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mode = match server.config().auto_compaction() {
        Ok(Some(mode)) => mode,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "auto compaction disabled");
            return;
        }
    };
    // Periodic: sample the revision every tenth of the period and compact to the sample one
    // period old (etcd samples every 1/10 of the retention too).
    let tick = match mode {
        AutoCompaction::Periodic(p) => (p / 10).max(Duration::from_millis(100)),
        AutoCompaction::Revisions(_) => Duration::from_secs(5),
    };
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut interval = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        if server.raft().metrics().borrow().current_leader != Some(server.member_id()) {
            samples.clear();
            continue;
        }
        let current = server.mvcc().current_revision();
        let target = match mode {
            AutoCompaction::Revisions(keep) => current - keep,
            AutoCompaction::Periodic(period) => {
                samples.push_back((Instant::now(), current));
                let mut target = 0;
                while let Some((at, rev)) = samples.front().copied() {
                    if at.elapsed() >= period {
                        target = rev;
                        samples.pop_front();
                    } else {
                        break;
                    }
                }
                target
            }
        };
        if target > server.mvcc().compacted_revision() && target > 0 {
            let req = CompactionRequest { revision: target, physical: false };
            match server.propose(Cmd::Compaction(req)).await {
                Ok(_) => tracing::info!(revision = target, "auto compaction finished"),
                Err(e) => tracing::warn!(revision = target, error = %e, "auto compaction failed"),
            }
        }
    }
}
