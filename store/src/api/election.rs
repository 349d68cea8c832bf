//! The v3election Election service: campaign for leadership of a name, proclaim values,
//! observe the leader, resign.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::queue;
use crate::error::Error;
use crate::member::handle::Member;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{Compare, PutRequest, RequestOp, TxnRequest};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};

/// etcd's Election service.
pub struct ElectionService {
    server: Member,
}

impl ElectionService {
    /// The service over a member.
    pub fn new(server: Member) -> ElectionService {
        ElectionService { server }
    }

    fn header(&self) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        Some(self.server.header())
    }
}

/// etcd's "election: not leader".
fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

/// etcd's answer to a Proclaim or Resign without its `leader`.
fn missing_leader() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let req = request.into_inner();
        // An empty name campaigns under the prefix "/", as in etcd.
        let (lease, mine) = async {
            let lease = queue::session_lease(&self.server, &caller, req.lease).await?;
            let mine =
                queue::enqueue(&self.server, &caller, &req.name, lease, req.value.clone()).await?;
            Ok((lease, mine))
        }
        .await
        .map_err(queue::as_client_error)?;
        if mine.value != req.value {
            // Re-campaigning with the same lease updates the value, as etcd does.
            proclaim_value(&self.server, &caller, &mine.key, mine.create_revision, req.value)
                .await?;
        }
        queue::wait_until_owner(&self.server, &caller, &req.name, &mine)
            .await
            .map_err(queue::as_client_error)?;
        let leader = LeaderKey { name: req.name, key: mine.key, rev: mine.create_revision, lease };
        Ok(Response::new(CampaignResponse { header: self.header(), leader: Some(leader) }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let req = request.into_inner();
        let leader = req.leader.ok_or_else(missing_leader)?;
        proclaim_value(&self.server, &caller, &leader.key, leader.rev, req.value).await?;
        Ok(Response::new(ProclaimResponse { header: self.header() }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let name = request.into_inner().name;
        match queue::owner(&self.server, &caller, &name).await.map_err(queue::as_client_error)? {
            Some(kv) => Ok(Response::new(LeaderResponse { header: self.header(), kv: Some(kv) })),
            None => Err(Status::unknown("election: no leader")),
        }
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let name = request.into_inner().name;
        let server = self.server.clone();
        let output = async_stream::try_stream! {
            let mut applied = server.subscribe_applied();
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                let owner = queue::owner(&server, &caller, &name).await;
                if let Some(kv) = owner.map_err(queue::as_client_error)? {
                    let seen = (kv.key.clone(), kv.mod_revision);
                    if last.as_ref() != Some(&seen) {
                        last = Some(seen);
                        let header = Some(server.header());
                        yield LeaderResponse { header, kv: Some(kv) };
                    }
                }
                applied.changed().await.map_err(|_| Status::from(Error::Stopped))?;
            }
        };
        Ok(Response::new(Box::pin(output)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let leader = request.into_inner().leader.ok_or_else(missing_leader)?;
        async {
            let current = queue::get(&self.server, &caller, &leader.key).await?;
            if current.is_some_and(|kv| kv.create_revision == leader.rev) {
                queue::delete(&self.server, &caller, &leader.key).await?;
            }
            Ok(())
        }
        .await
        .map_err(queue::as_client_error)?;
        Ok(Response::new(ResignResponse { header: self.header() }))
    }
}

/// Updates the leader's value, only while it still holds the key it was elected with.
async fn proclaim_value(
    server: &Member,
    caller: &crate::member::handle::AuthInfo,
    key: &[u8],
    rev: i64,
    value: Vec<u8>,
) -> Result<(), Status> {
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.to_vec(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::CreateRevision(rev)),
        }],
        success: vec![RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: key.to_vec(),
                value,
                ignore_lease: true,
                ..Default::default()
            })),
        }],
        failure: Vec::new(),
    };
    match server.propose_as(caller, Cmd::Txn(txn)).await.map_err(queue::as_client_error)? {
        Out::Txn(resp) if resp.succeeded => Ok(()),
        Out::Txn(_) => Err(not_leader()),
        other => Err(queue::as_client_error(crate::member::handle::unexpected(other))),
    }
}
