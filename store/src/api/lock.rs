//! The v3lock Lock service: a distributed mutex held as long as the caller's lease lives.

use tonic::{Request, Response, Status};

use super::queue;
use crate::error::Error;
use crate::pb::v3lockpb::lock_server::Lock;
use crate::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::server::EtcdServer;

/// etcd's Lock service.
pub struct LockService {
    server: EtcdServer,
}

impl LockService {
    /// The service over a member.
    pub fn new(server: EtcdServer) -> LockService {
        LockService { server }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(Error::EmptyKey.into());
        }
        let mine = queue::enqueue(&self.server, &req.name, req.lease, Vec::new()).await?;
        queue::wait_until_owner(&self.server, &req.name, &mine).await?;
        let header = Some(self.server.headers().make(self.server.mvcc().current_revision()));
        Ok(Response::new(LockResponse { header, key: mine.key }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let rev = queue::delete(&self.server, &request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse { header: Some(self.server.headers().make(rev)) }))
    }
}
