//! Talking to members with a stock etcd v3 client (the `etcd-client` crate), so the operator
//! dogfoods oxcd's etcd compatibility. Every call has a connect and a request timeout: an
//! unreachable member costs a reconcile seconds, never a hang.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, MemberAddOptions};

use crate::{Error, Result};

/// Time to connect to a member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for an ordinary call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for move-leader (oxcd waits out the followers' leader lease first).
const MOVE_LEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// A member's answer to `Maintenance.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Its member id.
    pub member_id: u64,
    /// Its cluster id.
    pub cluster_id: u64,
    /// The leader it follows (0 = none).
    pub leader: u64,
    /// Its last raft index.
    pub raft_index: u64,
    /// Its revision.
    pub revision: i64,
    /// Its database size.
    pub db_size: i64,
    /// Whether it is a learner.
    pub learner: bool,
    /// Errors and alarms it reports.
    pub errors: Vec<String>,
    /// Its server version.
    pub version: String,
}

/// One entry of the member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Member id.
    pub id: u64,
    /// Name (empty until started).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Learner or voter.
    pub learner: bool,
}

/// The client URL the operator uses for a pod IP.
pub fn endpoint(pod_ip: &str) -> String {
    format!("http://{pod_ip}:{}", crate::resources::CLIENT_PORT)
}

async fn call<T, F, Fut>(op: &'static str, endpoint: &str, timeout: Duration, f: F) -> Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let etcd =
        |source| Error::Etcd { op, endpoint: endpoint.to_string(), source: Box::new(source) };
    let opts = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT).with_timeout(timeout);
    let work = async {
        let client = Client::connect([endpoint], Some(opts)).await.map_err(etcd)?;
        f(client).await.map_err(etcd)
    };
    match tokio::time::timeout(timeout + CONNECT_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::EtcdTimeout { op, endpoint: endpoint.to_string() }),
    }
}

/// `Maintenance.Status` of the member at `endpoint`.
pub async fn status(endpoint: &str) -> Result<Status> {
    call("status", endpoint, CALL_TIMEOUT, |mut c| async move {
        let s = c.status().await?;
        let header = s.header();
        Ok(Status {
            member_id: header.map(|h| h.member_id()).unwrap_or(0),
            cluster_id: header.map(|h| h.cluster_id()).unwrap_or(0),
            leader: s.leader(),
            raft_index: s.raft_index(),
            revision: header.map(|h| h.revision()).unwrap_or(0),
            db_size: s.db_size(),
            learner: s.is_learner(),
            errors: s.errors().to_vec(),
            version: s.version().to_string(),
        })
    })
    .await
}

/// The member list as the member at `endpoint` knows it.
pub async fn list(endpoint: &str) -> Result<Vec<Listed>> {
    call("member list", endpoint, CALL_TIMEOUT, |mut c| async move {
        let r = c.member_list().await?;
        Ok(r.members()
            .iter()
            .map(|m| Listed {
                id: m.id(),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
                client_urls: m.client_urls().to_vec(),
                learner: m.is_learner(),
            })
            .collect())
    })
    .await
}

/// `member add --learner`; returns the new member's id.
pub async fn add_learner(endpoint: &str, peer_url: &str) -> Result<u64> {
    let urls = vec![peer_url.to_string()];
    call("member add", endpoint, CALL_TIMEOUT, |mut c| async move {
        let r = c.member_add(urls, Some(MemberAddOptions::new().with_is_learner())).await?;
        Ok(r.member().map(|m| m.id()).unwrap_or(0))
    })
    .await
}

/// `member promote`.
pub async fn promote(endpoint: &str, id: u64) -> Result<()> {
    call("member promote", endpoint, CALL_TIMEOUT, |mut c| async move {
        c.member_promote(id).await.map(|_| ())
    })
    .await
}

/// `member remove`.
pub async fn remove(endpoint: &str, id: u64) -> Result<()> {
    call("member remove", endpoint, CALL_TIMEOUT, |mut c| async move {
        c.member_remove(id).await.map(|_| ())
    })
    .await
}

/// `move-leader` (sent to the leader).
pub async fn move_leader(endpoint: &str, to: u64) -> Result<()> {
    call("move-leader", endpoint, MOVE_LEADER_TIMEOUT, |mut c| async move {
        c.move_leader(to).await.map(|_| ())
    })
    .await
}

/// `defrag` of one member.
pub async fn defragment(endpoint: &str) -> Result<()> {
    call("defragment", endpoint, Duration::from_secs(60), |mut c| async move {
        c.defragment().await.map(|_| ())
    })
    .await
}

/// etcd's refusal to promote a learner that is not caught up yet (`ErrGRPCLearnerNotReady`).
const LEARNER_NOT_READY: &str = "can only promote a learner member which is in sync with leader";

/// Whether an etcd error means the learner is not in sync yet (retry later, not a failure).
pub fn is_learner_not_ready(e: &Error) -> bool {
    e.to_string().contains(LEARNER_NOT_READY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learner_not_in_sync_is_recognised_by_etcds_message() {
        let status = tonic::Status::failed_precondition(
            "etcdserver: can only promote a learner member which is in sync with leader",
        );
        let e = Error::Etcd {
            op: "member promote",
            endpoint: "http://127.0.0.1:2379".into(),
            source: Box::new(etcd_client::Error::GRpcStatus(status)),
        };
        assert!(is_learner_not_ready(&e));
        assert!(!is_learner_not_ready(&Error::NoLeader("member promote")));
    }
}
