//! The leader's SYNC (etcd's `sync` every 500 ms): when a v2 node's TTL has run out by the
//! leader's clock, the leader proposes its time and every member expires the same nodes
//! when it applies that entry. No member ever expires a node on its own clock.

use std::time::Duration;

use crate::member::handle::Member;
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::v2::command::V2Command;
use crate::v2::event::now_ns;

/// How often the leader looks for expired nodes (etcd's SYNC interval).
const SYNC_INTERVAL: Duration = Duration::from_millis(500);

/// Runs until `shutdown` changes: on the leader, proposes a SYNC when a node has expired.
pub async fn run(server: Member, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !server.is_leader() {
            continue;
        }
        let now = now_ns();
        let due = server.v2_next_expiry().is_some_and(|at| at <= now);
        if !due {
            continue;
        }
        let sync = V2Command::Sync { time: now };
        if let Err(e) = server.propose(Cmd::V2(sync.encode())).await {
            tracing::warn!(error = %e, "v2 SYNC (TTL expiry) failed; will retry");
        }
    }
}
