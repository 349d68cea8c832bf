//! The Lease service. Grants and revokes go through raft; keep-alives and TTL queries are
//! answered by the leader's timers (followers forward them over the peer service).

use std::pin::Pin;

use futures::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Error, Result};
use crate::member::handle::{unexpected, Member, MAX_LEASE_TTL};
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseStatus as PbLeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;

/// etcd's Lease service.
pub struct LeaseService {
    server: Member,
}

impl LeaseService {
    /// The service over a member.
    pub fn new(server: Member) -> LeaseService {
        LeaseService { server }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let mut req = request.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        if req.id == 0 {
            req.id = self.server.next_lease_id();
        }
        match self.server.propose_as(&caller, Cmd::LeaseGrant(req)).await? {
            Out::LeaseGrant(mut resp) => {
                self.server.headers().stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        // Apply checks that the caller may write every key attached to the lease.
        let caller = super::caller(&self.server, request.metadata()).await?;
        match self.server.propose_as(&caller, Cmd::LeaseRevoke(request.into_inner())).await? {
            Out::LeaseRevoke(mut resp) => {
                self.server.headers().stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other).into()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let server = self.server.clone();
        let output = async_stream::try_stream! {
            loop {
                // A stopping member ends the stream rather than wait for the client to.
                let next = tokio::select! {
                    next = inbound.next() => next,
                    _ = server.stopping() => Some(Err(Status::from(Error::Stopped))),
                };
                let Some(req) = next else { break };
                let req = req?;
                let ttl = server.keep_alive(req.id).await?;
                let header = Some(server.header());
                yield LeaseKeepAliveResponse { header, id: req.id, ttl };
            }
        };
        Ok(Response::new(Box::pin(output)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let header = Some(self.server.header());
        let resp = match self.server.time_to_live(req.id).await? {
            Some(status) => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: status.remaining,
                granted_ttl: status.granted,
                keys: if req.keys { status.keys } else { Vec::new() },
            },
            // etcd answers a missing lease with TTL -1 rather than an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self.server.lease_ids().into_iter().map(|id| PbLeaseStatus { id }).collect();
        let header = Some(self.server.header());
        Ok(Response::new(LeaseLeasesResponse { header, leases }))
    }
}
