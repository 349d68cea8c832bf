//! The Auth service, as etcd's `v3rpc/auth.go` and `v3_server.go`.
//!
//! Changes go through raft with the caller attached, and apply checks the root role (see
//! `auth::needs_admin`); passwords are hashed here, before proposing, so the log never holds
//! one and apply stays deterministic. Reads (status, user and role get/list), which etcd also
//! sends through raft, are answered locally after a linearizable read, with etcd's rules: the
//! root role, or for `user get` the user itself, for `role get` a holder of the role.

use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::error::Result;
use crate::member::handle::{unexpected, AuthInfo, Member};
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::{
    AuthDisableRequest, AuthDisableResponse, AuthEnableRequest, AuthEnableResponse,
    AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest, AuthRoleDeleteResponse,
    AuthRoleGetRequest, AuthRoleGetResponse, AuthRoleGrantPermissionRequest,
    AuthRoleGrantPermissionResponse, AuthRoleListRequest, AuthRoleListResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthStatusRequest,
    AuthStatusResponse, AuthUserAddRequest, AuthUserAddResponse, AuthUserChangePasswordRequest,
    AuthUserChangePasswordResponse, AuthUserDeleteRequest, AuthUserDeleteResponse,
    AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse,
    AuthUserListRequest, AuthUserListResponse, AuthUserRevokeRoleRequest,
    AuthUserRevokeRoleResponse, AuthenticateRequest, AuthenticateResponse, ResponseHeader,
};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;

/// etcd's Auth service.
pub struct AuthService {
    server: Member,
}

/// Unwraps an apply result of the expected kind and stamps its header.
macro_rules! answer {
    ($self:ident, $out:expr, $variant:ident) => {
        match $out {
            Out::$variant(mut resp) => {
                $self.server.headers().stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other).into()),
        }
    };
}

impl AuthService {
    /// The service over a member.
    pub fn new(server: Member) -> AuthService {
        AuthService { server }
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(self.server.header())
    }

    /// Proposes an auth change on behalf of the request's caller.
    async fn change(&self, metadata: &MetadataMap, cmd: Cmd) -> Result<Out> {
        let caller = self.server.caller(metadata).await?;
        self.server.propose_as(&caller, cmd).await
    }

    /// The caller of a read, once this member has caught up with the leader.
    async fn reader(&self, metadata: &MetadataMap) -> Result<AuthInfo> {
        let caller = self.server.caller(metadata).await?;
        self.server.linearizable_read().await?;
        Ok(caller)
    }

    /// etcd's `Authenticate`: check the password here, then make a token known to every
    /// member through raft; retry if the auth store changed meanwhile.
    async fn authenticate(&self, req: AuthenticateRequest) -> Result<AuthenticateResponse> {
        self.server.linearizable_read().await?;
        let mut resp = self.server.authenticate(req).await?;
        self.server.headers().stamp(&mut resp.header);
        Ok(resp)
    }
}

/// The bcrypt hash to store for a new password, base64-encoded as etcd's `hashedPassword`.
/// A client may send the hash itself (etcdctl does not); otherwise the member hashes the
/// password (off the async threads). The plain password never reaches the log.
async fn hashed(
    server: &Member,
    password: &mut String,
    hashed_password: &mut String,
) -> Result<()> {
    if password.is_empty() && !hashed_password.is_empty() {
        return Ok(());
    }
    *hashed_password = server.hash_password(std::mem::take(password)).await?;
    Ok(())
}

/// A request to pass on to another member (the leader), carrying the caller's token.
pub fn forwarded<T>(metadata: &MetadataMap, message: T) -> Request<T> {
    let mut request = Request::new(message);
    for key in ["token", "authorization"] {
        if let Some(value) = metadata.get(key) {
            request.metadata_mut().insert(key, value.clone());
        }
    }
    request
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        request: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(self, self.change(&md, Cmd::AuthEnable(req)).await?, AuthEnable)
    }

    async fn auth_disable(
        &self,
        request: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(self, self.change(&md, Cmd::AuthDisable(req)).await?, AuthDisable)
    }

    async fn auth_status(
        &self,
        request: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let caller = self.reader(request.metadata()).await?;
        self.server.check_admin(&caller)?;
        let (enabled, auth_revision) = self.server.auth_status();
        Ok(Response::new(AuthStatusResponse { header: self.header(), enabled, auth_revision }))
    }

    /// The caller's token, if any, is ignored: a client re-authenticates with a stale one.
    async fn authenticate(
        &self,
        request: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Ok(Response::new(AuthService::authenticate(self, request.into_inner()).await?))
    }

    async fn user_add(
        &self,
        request: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let (md, _, mut req) = request.into_parts();
        if req.options.as_ref().is_some_and(|o| o.no_password) {
            req.password.clear();
        } else {
            hashed(&self.server, &mut req.password, &mut req.hashed_password).await?;
        }
        answer!(self, self.change(&md, Cmd::AuthUserAdd(req)).await?, AuthUserAdd)
    }

    async fn user_get(
        &self,
        request: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let caller = self.reader(request.metadata()).await?;
        let name = request.into_inner().name;
        if let Err(e) = self.server.check_admin(&caller) {
            if name != caller.user {
                return Err(e.into());
            }
        }
        let roles = self.server.user_roles(&name)?;
        Ok(Response::new(AuthUserGetResponse { header: self.header(), roles }))
    }

    async fn user_list(
        &self,
        request: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let caller = self.reader(request.metadata()).await?;
        self.server.check_admin(&caller)?;
        let users = self.server.user_names();
        Ok(Response::new(AuthUserListResponse { header: self.header(), users }))
    }

    async fn user_delete(
        &self,
        request: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(self, self.change(&md, Cmd::AuthUserDelete(req)).await?, AuthUserDelete)
    }

    async fn user_change_password(
        &self,
        request: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let (md, _, mut req) = request.into_parts();
        hashed(&self.server, &mut req.password, &mut req.hashed_password).await?;
        answer!(
            self,
            self.change(&md, Cmd::AuthUserChangePassword(req)).await?,
            AuthUserChangePassword
        )
    }

    async fn user_grant_role(
        &self,
        request: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(self, self.change(&md, Cmd::AuthUserGrantRole(req)).await?, AuthUserGrantRole)
    }

    async fn user_revoke_role(
        &self,
        request: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(self, self.change(&md, Cmd::AuthUserRevokeRole(req)).await?, AuthUserRevokeRole)
    }

    async fn role_add(
        &self,
        request: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(self, self.change(&md, Cmd::AuthRoleAdd(req)).await?, AuthRoleAdd)
    }

    async fn role_get(
        &self,
        request: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let caller = self.reader(request.metadata()).await?;
        let role = request.into_inner().role;
        if let Err(e) = self.server.check_admin(&caller) {
            if !self.server.has_role(&caller.user, &role) {
                return Err(e.into());
            }
        }
        let perm = self.server.role_permissions(&role)?;
        Ok(Response::new(AuthRoleGetResponse { header: self.header(), perm }))
    }

    async fn role_list(
        &self,
        request: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let caller = self.reader(request.metadata()).await?;
        self.server.check_admin(&caller)?;
        let roles = self.server.role_names();
        Ok(Response::new(AuthRoleListResponse { header: self.header(), roles }))
    }

    async fn role_delete(
        &self,
        request: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(self, self.change(&md, Cmd::AuthRoleDelete(req)).await?, AuthRoleDelete)
    }

    async fn role_grant_permission(
        &self,
        request: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(
            self,
            self.change(&md, Cmd::AuthRoleGrantPermission(req)).await?,
            AuthRoleGrantPermission
        )
    }

    async fn role_revoke_permission(
        &self,
        request: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let (md, _, req) = request.into_parts();
        answer!(
            self,
            self.change(&md, Cmd::AuthRoleRevokePermission(req)).await?,
            AuthRoleRevokePermission
        )
    }
}
