//! The edge of etcd's v2 API: the HTTP handlers on the client port (`http`, `members`), oxcd's online
//! v2 → v3 migration endpoint (`admin`) and the leader's SYNC that expires TTL'd nodes
//! through raft (`expiry`). The store they drive is `crate::v2`.

pub mod admin;
pub mod expiry;
pub mod http;
pub mod members;
