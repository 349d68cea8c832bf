//! The peer gRPC service: raft traffic and follower-to-leader forwarding. Served on the peer
//! URLs only, never to clients.

use openraft::raft::AppendEntriesResponse;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::member::server::EtcdServer;
use crate::pb::oxcdpb::raft_peer_server::RaftPeer;
use crate::pb::oxcdpb::{
    ClusterInfoResponse, Empty, InternalRequest, InternalResponse, KeepAliveRequest,
    KeepAliveResponse, RaftBytes, ReadIndexResponse, TimeToLiveRequest, TimeToLiveResponse,
};
use crate::raft::network::{peer_status, CLUSTER_ID_HEADER};
use crate::raft::pre_vote::{self, PreVoteRequest};
use crate::raft::{decode, encode, TypeConfig};

/// The peer service of a member.
pub struct PeerService {
    server: EtcdServer,
}

impl PeerService {
    /// The service over a member.
    pub fn new(server: EtcdServer) -> PeerService {
        PeerService { server }
    }
}

impl PeerService {
    /// Refuses raft traffic from another cluster, as etcd does ("cluster ID mismatch").
    fn check_cluster<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let ours = self.server.headers().cluster_id();
        let theirs = request
            .metadata()
            .get(CLUSTER_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| u64::from_str_radix(v, 16).ok());
        match theirs {
            Some(id) if id != ours => {
                tracing::warn!(remote = %format!("{id:x}"), local = %format!("{ours:x}"), "rejected raft message: cluster ID mismatch");
                Err(Status::failed_precondition(format!(
                    "request cluster ID mismatch (got {id:x} want {ours:x})"
                )))
            }
            _ => Ok(()),
        }
    }
}

impl PeerService {
    /// Answers a removed member's raft traffic with etcd's "removed" error, which stops it.
    fn check_not_removed(&self, sender: u64) -> Result<(), Status> {
        if self.server.cluster().is_removed(sender) {
            return Err(peer_status(tonic::Code::FailedPrecondition, &Error::MemberRemoved));
        }
        Ok(())
    }
}

fn bad_message(e: bincode::Error) -> Status {
    Status::invalid_argument(format!("undecodable raft message: {e}"))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftBytes>, Status> {
    let data = encode(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftBytes { data }))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        request: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        self.check_cluster(&request)?;
        let req: openraft::raft::AppendEntriesRequest<TypeConfig> =
            decode(&request.into_inner().data).map_err(bad_message)?;
        self.check_not_removed(req.vote.leader_id().voted_for().unwrap_or_default())?;
        if !req.entries.is_empty() {
            self.server.peer_stats().append_received();
        }
        let answer = self.server.raft().append_entries(req).await;
        if matches!(&answer, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.server.leader_contact().touch();
        }
        reply(&answer)
    }

    async fn vote(&self, request: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.check_cluster(&request)?;
        let req: openraft::raft::VoteRequest<u64> =
            decode(&request.into_inner().data).map_err(bad_message)?;
        self.check_not_removed(req.vote.leader_id().voted_for().unwrap_or_default())?;
        reply(&self.server.raft().vote(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        self.check_cluster(&request)?;
        let req: openraft::raft::InstallSnapshotRequest<TypeConfig> =
            decode(&request.into_inner().data).map_err(bad_message)?;
        let answer = self.server.raft().install_snapshot(req).await;
        if answer.is_ok() {
            self.server.leader_contact().touch();
        }
        reply(&answer)
    }

    async fn propose(
        &self,
        request: Request<InternalRequest>,
    ) -> Result<Response<InternalResponse>, Status> {
        let req = request.into_inner();
        if req.request.is_none() {
            return Err(Status::invalid_argument("empty proposal"));
        }
        // The whole request, so the client's identity (`auth`) reaches apply on the leader.
        let response = match self.server.propose_for_peer(req).await {
            Ok(out) => out,
            // Typed: the follower rebuilds the very error (`Error::from_code`).
            Err(e) => crate::pb::oxcdpb::internal_response::Response::Error((&e).into()),
        };
        // At least the command's own index: apply publishes it before it answers.
        let applied_index = *self.server.applier().subscribe_applied().borrow();
        Ok(Response::new(InternalResponse { response: Some(response), applied_index }))
    }

    async fn read_index(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        // Bounded like a proposal: a follower asking has its own deadline, this keeps a
        // member without a leader from holding the call forever.
        // A refusal is typed (`peer_status`): the follower hands the very error on.
        let index =
            tokio::time::timeout(crate::member::server::PROPOSE_TIMEOUT, self.server.read_index())
                .await
                .unwrap_or(Err(Error::Timeout))
                .map_err(|e| peer_status(tonic::Code::Unavailable, &e))?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<KeepAliveRequest>,
    ) -> Result<Response<KeepAliveResponse>, Status> {
        let ttl = self.server.lessor().renew(request.into_inner().id).unwrap_or(0);
        Ok(Response::new(KeepAliveResponse { ttl }))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<TimeToLiveRequest>,
    ) -> Result<Response<TimeToLiveResponse>, Status> {
        let resp = match self.server.lessor().status(request.into_inner().id) {
            Some(s) => TimeToLiveResponse {
                found: true,
                remaining: s.remaining,
                granted: s.granted,
                keys: s.keys,
            },
            None => TimeToLiveResponse::default(),
        };
        Ok(Response::new(resp))
    }

    async fn cluster_info(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<ClusterInfoResponse>, Status> {
        // The members of the current configuration only: after --force-new-cluster the
        // attribute table still names the lost members, and a member joining under a lost
        // member's peer URL would take that member for itself ("already bootstrapped").
        let current: std::collections::BTreeSet<u64> =
            crate::member::membership::list(&self.server).iter().map(|m| m.id).collect();
        let members = self.server.cluster().members().into_iter();
        Ok(Response::new(ClusterInfoResponse {
            cluster_id: self.server.headers().cluster_id(),
            members: members.filter(|(id, _)| current.contains(id)).map(|(_, a)| a).collect(),
            token: self.server.config().initial_cluster_token.clone(),
        }))
    }

    async fn pre_vote(&self, request: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        self.check_cluster(&request)?;
        let req: PreVoteRequest = decode(&request.into_inner().data).map_err(bad_message)?;
        // A removed member that still thinks itself a voter learns it here and stops.
        self.check_not_removed(req.candidate)?;
        let me = pre_vote::view(self.server.raft(), self.server.leader_contact());
        let answer = pre_vote::answer(&req, &me, self.server.election_timing().lease());
        tracing::debug!(?req, ?me, granted = answer.granted, "pre-vote asked");
        reply(&answer)
    }

    async fn campaign(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.server.raft().trigger().elect().await.map_err(|_| Status::from(Error::Stopped))?;
        Ok(Response::new(Empty {}))
    }
}
