//! The gateway's routes: one per unary gRPC method etcd's gateway serves, each decoding the
//! JSON body, calling the method over the loopback channel and encoding the answer.

use axum::response::Response;
use axum::routing::post;
use axum::Router;
use tonic::transport::Channel;

use super::json::{self, In};
use super::Gateway;
use crate::pb::authpb::permission::Type as PermType;
use crate::pb::authpb::{Permission, UserAddOptions};
use crate::pb::etcdserverpb::auth_client::AuthClient;
use crate::pb::etcdserverpb::cluster_client::ClusterClient;
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::*;

/// The paths (after the `/v3` or `/v3beta` prefix) and their handlers.
pub fn router(channel: Channel) -> Router {
    let mut router = Router::new();
    for prefix in ["/v3", "/v3beta"] {
        let at = |path: &str| format!("{prefix}{path}");
        router = router
            .route(&at("/kv/range"), post(kv_range))
            .route(&at("/kv/put"), post(kv_put))
            .route(&at("/kv/deleterange"), post(kv_delete_range))
            .route(&at("/kv/txn"), post(kv_txn))
            .route(&at("/kv/compaction"), post(kv_compaction))
            .route(&at("/lease/grant"), post(lease_grant))
            .route(&at("/lease/revoke"), post(lease_revoke))
            .route(&at("/kv/lease/revoke"), post(lease_revoke))
            .route(&at("/lease/timetolive"), post(lease_time_to_live))
            .route(&at("/kv/lease/timetolive"), post(lease_time_to_live))
            .route(&at("/lease/leases"), post(lease_leases))
            .route(&at("/kv/lease/leases"), post(lease_leases))
            .route(&at("/lease/keepalive"), post(super::watch::lease_keep_alive))
            .route(&at("/maintenance/status"), post(maintenance_status))
            .route(&at("/maintenance/alarm"), post(maintenance_alarm))
            .route(&at("/maintenance/defragment"), post(maintenance_defragment))
            // etcd's gateway has no HashKV path (its annotation repeats Hash's path).
            .route(&at("/maintenance/hash"), post(maintenance_hash))
            .route(&at("/maintenance/transfer-leadership"), post(maintenance_move_leader))
            .route(&at("/cluster/member/list"), post(member_list))
            .route(&at("/cluster/member/add"), post(member_add))
            .route(&at("/cluster/member/remove"), post(member_remove))
            .route(&at("/cluster/member/update"), post(member_update))
            .route(&at("/cluster/member/promote"), post(member_promote))
            .route(&at("/auth/enable"), post(auth_enable))
            .route(&at("/auth/disable"), post(auth_disable))
            .route(&at("/auth/status"), post(auth_status))
            .route(&at("/auth/authenticate"), post(authenticate))
            .route(&at("/auth/user/add"), post(user_add))
            .route(&at("/auth/user/get"), post(user_get))
            .route(&at("/auth/user/list"), post(user_list))
            .route(&at("/auth/user/delete"), post(user_delete))
            .route(&at("/auth/user/changepw"), post(user_change_password))
            .route(&at("/auth/user/grant"), post(user_grant_role))
            .route(&at("/auth/user/revoke"), post(user_revoke_role))
            .route(&at("/auth/role/add"), post(role_add))
            .route(&at("/auth/role/get"), post(role_get))
            .route(&at("/auth/role/list"), post(role_list))
            .route(&at("/auth/role/delete"), post(role_delete))
            .route(&at("/auth/role/grant"), post(role_grant_permission))
            .route(&at("/auth/role/revoke"), post(role_revoke_permission))
            .route(&at("/maintenance/snapshot"), post(super::watch::snapshot))
            .route(&at("/watch"), post(super::watch::watch))
            .route(&at("/lock/lock"), post(super::concurrency::lock))
            .route(&at("/lock/unlock"), post(super::concurrency::unlock))
            .route(&at("/election/campaign"), post(super::concurrency::campaign))
            .route(&at("/election/proclaim"), post(super::concurrency::proclaim))
            .route(&at("/election/leader"), post(super::concurrency::leader))
            .route(&at("/election/resign"), post(super::concurrency::resign))
            .route(&at("/election/observe"), post(super::concurrency::observe))
            // grpc-gateway's answer for paths it does not serve.
            .route(&at("/{*rest}"), axum::routing::any(not_found));
    }
    router.with_state(Gateway { channel })
}

async fn not_found() -> Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::NOT_FOUND,
        [("content-type", "text/plain; charset=utf-8")],
        "Not Found\n",
    )
        .into_response()
}

route!(kv_range, KvClient, range, json::range_request, json::range);
route!(kv_put, KvClient, put, json::put_request, json::put);
route!(kv_delete_range, KvClient, delete_range, json::delete_range_request, json::delete_range);
route!(kv_txn, KvClient, txn, json::txn_request, json::txn);
route!(
    kv_compaction,
    KvClient,
    compact,
    |o: &In<'_>| Ok(CompactionRequest {
        revision: o.int("revision")?,
        physical: o.bool("physical")?
    }),
    |r: &CompactionResponse| json::header_only(&r.header)
);
route!(
    lease_grant,
    LeaseClient,
    lease_grant,
    |o: &In<'_>| Ok(LeaseGrantRequest { ttl: o.int("TTL")?, id: o.int("ID")? }),
    json::lease_grant
);
route!(
    lease_revoke,
    LeaseClient,
    lease_revoke,
    |o: &In<'_>| Ok(LeaseRevokeRequest { id: o.int("ID")? }),
    |r: &LeaseRevokeResponse| json::header_only(&r.header)
);
route!(
    lease_time_to_live,
    LeaseClient,
    lease_time_to_live,
    |o: &In<'_>| Ok(LeaseTimeToLiveRequest { id: o.int("ID")?, keys: o.bool("keys")? }),
    json::lease_time_to_live
);
route!(
    lease_leases,
    LeaseClient,
    lease_leases,
    |_: &In<'_>| Ok(LeaseLeasesRequest {}),
    json::lease_leases
);
route!(
    maintenance_status,
    MaintenanceClient,
    status,
    |_: &In<'_>| Ok(StatusRequest {}),
    json::status
);
route!(
    member_list,
    ClusterClient,
    member_list,
    |o: &In<'_>| Ok(MemberListRequest { linearizable: o.bool("linearizable")? }),
    json::member_list
);
route!(
    auth_enable,
    AuthClient,
    auth_enable,
    |_: &In<'_>| Ok(AuthEnableRequest {}),
    |r: &AuthEnableResponse| json::header_only(&r.header)
);
route!(
    auth_disable,
    AuthClient,
    auth_disable,
    |_: &In<'_>| Ok(AuthDisableRequest {}),
    |r: &AuthDisableResponse| json::header_only(&r.header)
);
route!(
    auth_status,
    AuthClient,
    auth_status,
    |_: &In<'_>| Ok(AuthStatusRequest {}),
    json::auth_status
);
route!(
    authenticate,
    AuthClient,
    authenticate,
    |o: &In<'_>| Ok(AuthenticateRequest { name: o.str("name")?, password: o.str("password")? }),
    json::authenticate
);
route!(
    user_add,
    AuthClient,
    user_add,
    |o: &In<'_>| {
        let options = match o.obj("options")? {
            Some(opts) => Some(UserAddOptions { no_password: opts.bool("no_password")? }),
            None => None,
        };
        Ok(AuthUserAddRequest {
            name: o.str("name")?,
            password: o.str("password")?,
            options,
            hashed_password: String::new(),
        })
    },
    |r: &AuthUserAddResponse| json::header_only(&r.header)
);
route!(
    user_get,
    AuthClient,
    user_get,
    |o: &In<'_>| Ok(AuthUserGetRequest { name: o.str("name")? }),
    |r: &AuthUserGetResponse| json::names(&r.header, "roles", &r.roles)
);
route!(
    user_list,
    AuthClient,
    user_list,
    |_: &In<'_>| Ok(AuthUserListRequest {}),
    |r: &AuthUserListResponse| json::names(&r.header, "users", &r.users)
);
route!(
    user_delete,
    AuthClient,
    user_delete,
    |o: &In<'_>| Ok(AuthUserDeleteRequest { name: o.str("name")? }),
    |r: &AuthUserDeleteResponse| json::header_only(&r.header)
);
route!(
    user_change_password,
    AuthClient,
    user_change_password,
    |o: &In<'_>| Ok(AuthUserChangePasswordRequest {
        name: o.str("name")?,
        password: o.str("password")?,
        hashed_password: String::new(),
    }),
    |r: &AuthUserChangePasswordResponse| json::header_only(&r.header)
);
route!(
    user_grant_role,
    AuthClient,
    user_grant_role,
    |o: &In<'_>| Ok(AuthUserGrantRoleRequest { user: o.str("user")?, role: o.str("role")? }),
    |r: &AuthUserGrantRoleResponse| json::header_only(&r.header)
);
route!(
    user_revoke_role,
    AuthClient,
    user_revoke_role,
    |o: &In<'_>| Ok(AuthUserRevokeRoleRequest { name: o.str("name")?, role: o.str("role")? }),
    |r: &AuthUserRevokeRoleResponse| json::header_only(&r.header)
);
route!(
    role_add,
    AuthClient,
    role_add,
    |o: &In<'_>| Ok(AuthRoleAddRequest { name: o.str("name")? }),
    |r: &AuthRoleAddResponse| json::header_only(&r.header)
);
route!(
    role_get,
    AuthClient,
    role_get,
    |o: &In<'_>| Ok(AuthRoleGetRequest { role: o.str("role")? }),
    json::role_get
);
route!(
    role_list,
    AuthClient,
    role_list,
    |_: &In<'_>| Ok(AuthRoleListRequest {}),
    |r: &AuthRoleListResponse| json::names(&r.header, "roles", &r.roles)
);
route!(
    role_delete,
    AuthClient,
    role_delete,
    |o: &In<'_>| Ok(AuthRoleDeleteRequest { role: o.str("role")? }),
    |r: &AuthRoleDeleteResponse| json::header_only(&r.header)
);
route!(
    role_grant_permission,
    AuthClient,
    role_grant_permission,
    |o: &In<'_>| {
        let perm = match o.obj("perm")? {
            Some(p) => Some(Permission {
                perm_type: p
                    .enumeration("permType", |s| PermType::from_str_name(s).map(|t| t as i32))?,
                key: p.bytes("key")?,
                range_end: p.bytes("range_end")?,
            }),
            None => None,
        };
        Ok(AuthRoleGrantPermissionRequest { name: o.str("name")?, perm })
    },
    |r: &AuthRoleGrantPermissionResponse| json::header_only(&r.header)
);
route!(
    role_revoke_permission,
    AuthClient,
    role_revoke_permission,
    |o: &In<'_>| Ok(AuthRoleRevokePermissionRequest {
        role: o.str("role")?,
        key: o.bytes("key")?,
        range_end: o.bytes("range_end")?,
    }),
    |r: &AuthRoleRevokePermissionResponse| json::header_only(&r.header)
);

route!(
    maintenance_alarm,
    MaintenanceClient,
    alarm,
    |o: &In<'_>| Ok(AlarmRequest {
        action: o.enumeration("action", |s| {
            alarm_request::AlarmAction::from_str_name(s).map(|a| a as i32)
        })?,
        member_id: o.int("memberID")?,
        alarm: o.enumeration("alarm", |s| AlarmType::from_str_name(s).map(|a| a as i32))?,
    }),
    json::alarm
);
route!(
    maintenance_defragment,
    MaintenanceClient,
    defragment,
    |_: &In<'_>| Ok(DefragmentRequest {}),
    |r: &DefragmentResponse| json::header_only(&r.header)
);
route!(maintenance_hash, MaintenanceClient, hash, |_: &In<'_>| Ok(HashRequest {}), json::hash);
route!(
    maintenance_move_leader,
    MaintenanceClient,
    move_leader,
    |o: &In<'_>| Ok(MoveLeaderRequest { target_id: o.int("targetID")? }),
    |r: &MoveLeaderResponse| json::header_only(&r.header)
);
route!(
    member_add,
    ClusterClient,
    member_add,
    |o: &In<'_>| Ok(MemberAddRequest {
        peer_ur_ls: o.strs("peerURLs")?,
        is_learner: o.bool("isLearner")?,
    }),
    json::member_add
);
route!(
    member_remove,
    ClusterClient,
    member_remove,
    |o: &In<'_>| Ok(MemberRemoveRequest { id: o.int("ID")? }),
    |r: &MemberRemoveResponse| json::members(&r.header, &r.members)
);
route!(
    member_update,
    ClusterClient,
    member_update,
    |o: &In<'_>| Ok(MemberUpdateRequest { id: o.int("ID")?, peer_ur_ls: o.strs("peerURLs")? }),
    |r: &MemberUpdateResponse| json::members(&r.header, &r.members)
);
route!(
    member_promote,
    ClusterClient,
    member_promote,
    |o: &In<'_>| Ok(MemberPromoteRequest { id: o.int("ID")? }),
    |r: &MemberPromoteResponse| json::members(&r.header, &r.members)
);
