//! The v3lock Lock service: a distributed mutex held as long as the caller's lease lives (or,
//! for a caller that names no lease, a 60 s session lease granted for it, as etcd does).

use tonic::{Request, Response, Status};

use super::queue;
use crate::member::handle::Member;
use crate::pb::v3lockpb::lock_server::Lock;
use crate::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

/// etcd's Lock service.
pub struct LockService {
    server: Member,
}

impl LockService {
    /// The service over a member.
    pub fn new(server: Member) -> LockService {
        LockService { server }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let req = request.into_inner();
        // An empty name is a lock on the prefix "/", as in etcd.
        let mine = async {
            let lease = queue::session_lease(&self.server, &caller, req.lease).await?;
            let mine = queue::enqueue(&self.server, &caller, &req.name, lease, Vec::new()).await?;
            queue::wait_until_owner(&self.server, &caller, &req.name, &mine).await?;
            Ok(mine)
        }
        .await
        .map_err(queue::as_client_error)?;
        let header = Some(self.server.header());
        Ok(Response::new(LockResponse { header, key: mine.key }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let caller = super::caller(&self.server, request.metadata()).await?;
        let rev = queue::delete(&self.server, &caller, &request.into_inner().key)
            .await
            .map_err(queue::as_client_error)?;
        Ok(Response::new(UnlockResponse { header: Some(self.server.headers().make(rev)) }))
    }
}
