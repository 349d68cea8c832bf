//! The Cluster service: raft's membership joined with members' published attributes.

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::server::EtcdServer;

/// etcd's Cluster service.
pub struct ClusterService {
    server: EtcdServer,
}

impl ClusterService {
    /// The service over a member.
    pub fn new(server: EtcdServer) -> ClusterService {
        ClusterService { server }
    }
}

/// Every member as etcd lists them: voters and learners from raft, names and client URLs
/// from attributes (empty for a member that has not started yet).
pub fn members(server: &EtcdServer) -> Vec<Member> {
    let metrics = server.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let attrs = server.cluster().members();
    let learners: Vec<u64> = membership.learner_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| {
            let a = attrs.get(id);
            Member {
                id: *id,
                name: a.map(|a| a.name.clone()).unwrap_or_default(),
                peer_ur_ls: a.map(|a| a.peer_urls.clone()).unwrap_or_else(|| vec![node.addr.clone()]),
                client_ur_ls: a.map(|a| a.client_urls.clone()).unwrap_or_default(),
                is_learner: learners.contains(id),
            }
        })
        .collect()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, _request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        Err(Error::Unimplemented("etcdserver: member add is not supported yet".into()).into())
    }

    async fn member_remove(
        &self,
        _request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(Error::Unimplemented("etcdserver: member remove is not supported yet".into()).into())
    }

    async fn member_update(
        &self,
        _request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(Error::Unimplemented("etcdserver: member update is not supported yet".into()).into())
    }

    async fn member_list(&self, request: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.server.linearizable_read().await?;
        }
        let header = Some(self.server.headers().make(self.server.mvcc().current_revision()));
        Ok(Response::new(MemberListResponse { header, members: members(&self.server) }))
    }

    async fn member_promote(
        &self,
        _request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(Error::Unimplemented("etcdserver: member promote is not supported yet".into()).into())
    }
}
