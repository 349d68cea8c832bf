//! The Cluster service. Membership changes are carried out by the leader; a follower passes
//! the call on to the leader's client URL unchanged, so any member accepts any request.

use tonic::{Request, Response, Status};

use super::auth::forwarded;
use crate::member::handle::Member;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};

/// etcd's Cluster service.
pub struct ClusterService {
    server: Member,
}

impl ClusterService {
    /// The service over a member.
    pub fn new(server: Member) -> ClusterService {
        ClusterService { server }
    }

    /// etcd's Cluster service stamps no revision on its headers (cluster, member, term only).
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.server.headers().make(0))
    }

    /// etcd's `checkMembershipOperationPermission`: membership changes need the root role.
    async fn check_admin(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let caller = super::caller(&self.server, metadata).await?;
        Ok(self.server.check_admin(&caller)?)
    }

    fn leader(&self) -> Result<Option<ClusterClient<tonic::transport::Channel>>, Status> {
        Ok(self.server.leader_client()?.map(ClusterClient::new))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.check_admin(request.metadata()).await?;
        if let Some(mut leader) = self.leader()? {
            let (metadata, _, message) = request.into_parts();
            return leader.member_add(forwarded(&metadata, message)).await;
        }
        let req = request.into_inner();
        let member = self.server.add_member(req.peer_ur_ls, req.is_learner).await?;
        let mut members = self.server.members();
        if !members.iter().any(|m| m.id == member.id) {
            members.push(member.clone());
            // etcd lists members by ID, the new one included.
            members.sort_by_key(|m| m.id);
        }
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.check_admin(request.metadata()).await?;
        if let Some(mut leader) = self.leader()? {
            let (metadata, _, message) = request.into_parts();
            return leader.member_remove(forwarded(&metadata, message)).await;
        }
        self.server.remove_member(request.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.check_admin(request.metadata()).await?;
        if let Some(mut leader) = self.leader()? {
            let (metadata, _, message) = request.into_parts();
            return leader.member_update(forwarded(&metadata, message)).await;
        }
        let req = request.into_inner();
        self.server.update_member(req.id, req.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.server.linearizable_read().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.check_admin(request.metadata()).await?;
        if let Some(mut leader) = self.leader()? {
            let (metadata, _, message) = request.into_parts();
            return leader.member_promote(forwarded(&metadata, message)).await;
        }
        self.server.promote_member(request.into_inner().id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }
}
