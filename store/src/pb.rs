//! Generated protobuf / gRPC types for etcd's v3 API.
//!
//! The definitions live in `store/proto/` and are compiled by `build.rs`.
//! They are oxcd's own files, but package, service, message and field names
//! and field numbers match etcd 3.5 so that stock etcd clients (etcdctl,
//! clientv3, jetcd, etcd-client, ...) are wire-compatible with oxcd.
//!
//! Each protobuf package is a sibling module here because the generated code
//! refers across packages via `super::<package>` (e.g. `etcdserverpb` uses
//! `super::mvccpb::KeyValue` and `super::authpb::Permission`).

/// Storage-level types: `KeyValue` and watch `Event`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Auth-store types: users, roles and permissions.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// The etcd v3 client API: KV, Watch, Lease, Cluster, Maintenance and Auth.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The v3lock `Lock` service.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// The v3election `Election` service.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// oxcd's own raft command, response and peer-service messages (not part of etcd's API).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod oxcdpb {
    tonic::include_proto!("oxcdpb");
}
