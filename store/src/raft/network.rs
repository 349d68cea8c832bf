//! The raft network: openraft's RPCs to other members over the peer gRPC service.
//!
//! Messages are bincode inside `oxcdpb.RaftBytes`; snapshots go in openraft's chunks
//! (`snapshot_max_chunk_size`), never as one giant message.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use prost::Message;
use tonic::transport::Channel;

use super::{decode, encode, TypeConfig};
use crate::error::Error;
use crate::pb::oxcdpb::raft_peer_client::RaftPeerClient;
use crate::pb::oxcdpb::{InternalError, RaftBytes};

/// Metadata key naming the sender's cluster on every raft message, so members of another
/// cluster (e.g. a mismatched --initial-cluster-token) are refused, as etcd refuses them.
pub const CLUSTER_ID_HEADER: &str = "oxcd-cluster-id";

/// How a member refuses a peer call with one of our errors: the gRPC status carries the typed
/// error (`oxcdpb.InternalError`, `Error::code`) in its details, so the caller rebuilds the
/// very error with `peer_error` instead of matching the text; the message is the error's
/// (etcd's) text, for logs. E.g. raft traffic from a member removed from the cluster is
/// answered with `Error::MemberRemoved` and the removed member stops on it (etcd's
/// `errMemberRemoved`): the leader stops replicating to a member as soon as it is removed, so
/// without this answer it would never learn it and would campaign forever.
pub fn peer_status(code: tonic::Code, err: &Error) -> tonic::Status {
    let details = InternalError::from(err).encode_to_vec();
    tonic::Status::with_details(code, err.to_string(), details.into())
}

/// The typed error a peer refused a call with (see `peer_status`); `None` when the status
/// carries none (a transport failure, or a peer that sent no code).
pub fn peer_error(status: &tonic::Status) -> Option<Error> {
    if status.details().is_empty() {
        return None;
    }
    InternalError::decode(status.details()).ok().map(Error::from)
}

/// Stops this member (through `removed`, which `EtcdServer::removed` watches) when `peer`
/// refused a call because this member was removed from the cluster; whether it did.
pub fn stop_if_removed(
    status: &tonic::Status,
    peer: u64,
    removed: &tokio::sync::watch::Sender<bool>,
) -> bool {
    let is_removed = peer_error(status) == Some(Error::MemberRemoved);
    if is_removed {
        tracing::warn!(peer = %format!("{peer:x}"), "{}; shutting down", Error::MemberRemoved);
        removed.send_replace(true);
    }
    is_removed
}

/// How long to wait before retrying a peer that did not answer.
const PEER_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Creates one connection per peer, lazily (a peer that is down does not block start-up).
#[derive(Clone)]
pub struct Network {
    /// This member's id (the `Local` label of the peer metrics).
    pub member_id: u64,
    /// The cluster this member belongs to.
    pub cluster_id: u64,
    /// Set when a peer tells this member it was removed (`EtcdServer::removed` watches it).
    pub removed: tokio::sync::watch::Sender<bool>,
    /// Where append calls are counted (etcd's v2 leader and self statistics).
    pub stats: std::sync::Arc<super::peer_stats::PeerStats>,
}

/// The connection to one peer.
pub struct PeerConnection {
    local: u64,
    target: u64,
    cluster_id: u64,
    client: Option<RaftPeerClient<Channel>>,
    addr: String,
    removed: tokio::sync::watch::Sender<bool>,
    stats: std::sync::Arc<super::peer_stats::PeerStats>,
}

/// Opens a lazily-connecting gRPC channel to a peer URL.
/// https peer URLs use the peer TLS files (`crate::tls::client`).
pub fn peer_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    crate::tls::client::channel(addr, crate::tls::client::Dial::Peer)
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerConnection {
        let client = peer_channel(&node.addr).ok().map(|c| {
            RaftPeerClient::new(c)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX)
        });
        PeerConnection {
            local: self.member_id,
            target,
            cluster_id: self.cluster_id,
            client,
            addr: node.addr.clone(),
            removed: self.removed.clone(),
            stats: self.stats.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(&mut self, method: Method, req: &Req) -> RpcResult<Resp, E>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            let err = std::io::Error::other(format!("bad peer url {}", self.addr));
            return Err(RPCError::Unreachable(Unreachable::new(&err)));
        };
        let data = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let peer = format!("{:x}", self.target);
        crate::metrics::PEER_SENT_BYTES.with_label_values(&[&peer]).inc_by(data.len() as u64);
        let started = std::time::Instant::now();
        let mut msg = tonic::Request::new(RaftBytes { data });
        if let Ok(v) = format!("{:x}", self.cluster_id).parse() {
            msg.metadata_mut().insert(CLUSTER_ID_HEADER, v);
        }
        let reply = match method {
            Method::Append => client.append_entries(msg).await,
            Method::Vote => client.vote(msg).await,
            Method::Snapshot => client.install_snapshot(msg).await,
        };
        match &reply {
            Ok(r) => {
                let received = r.get_ref().data.len() as u64;
                crate::metrics::PEER_RECEIVED_BYTES.with_label_values(&[&peer]).inc_by(received);
                if matches!(method, Method::Append) {
                    let rtt = started.elapsed().as_secs_f64();
                    crate::metrics::PEER_ROUND_TRIP.with_label_values(&[&peer]).observe(rtt);
                }
            }
            Err(_) => crate::metrics::PEER_SENT_FAILURES.with_label_values(&[&peer]).inc(),
        }
        crate::metrics::peer_answered(self.local, self.target, reply.is_ok());
        let reply = reply.map_err(|status| {
            stop_if_removed(&status, self.target, &self.removed);
            RPCError::Unreachable(Unreachable::new(&status))
        })?;
        let result: Result<Resp, RaftError<u64, E>> = decode(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    /// A peer that did not answer is retried at etcd's pace (every heartbeat-ish 100 ms), not
    /// openraft's default 500 ms: a member back from a pause or restart catches up at once.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(PEER_RETRY))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        let carried_entries = !rpc.entries.is_empty();
        let started = std::time::Instant::now();
        let result = self.call(Method::Append, &rpc).await;
        let answered = matches!(result, Ok(_) | Err(RPCError::RemoteError(_)));
        let round_trip = answered.then(|| started.elapsed());
        self.stats.append_sent(self.target, round_trip, carried_entries);
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(Method::Snapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(Method::Vote, &rpc).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal crosses the peer link as a code: the caller gets the very error back, and a
    /// status that only has the text (no code) is not taken for it.
    #[test]
    fn peer_errors_cross_as_codes_not_text() {
        let removed = peer_status(tonic::Code::FailedPrecondition, &Error::MemberRemoved);
        assert_eq!(removed.message(), "the member has been permanently removed from the cluster");
        assert_eq!(peer_error(&removed), Some(Error::MemberRemoved));
        let timeout = peer_status(tonic::Code::Unavailable, &Error::Timeout);
        assert_eq!(peer_error(&timeout), Some(Error::Timeout));
        let text_only = tonic::Status::failed_precondition(Error::MemberRemoved.to_string());
        assert_eq!(peer_error(&text_only), None);
        let garbage = tonic::Status::with_details(tonic::Code::Unknown, "x", vec![0xff; 3].into());
        assert_eq!(peer_error(&garbage), None);
    }
}
