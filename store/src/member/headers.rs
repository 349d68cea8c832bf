//! The response header every answer carries (cluster id, member id, raft term, revision):
//! the member keeps the raft term current, the API stamps it on what it returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::pb::etcdserverpb::ResponseHeader;

/// Stamps etcd's response header (cluster id, member id, raft term, revision) on responses.
/// Cheap to clone; the raft term is updated by the server as elections happen.
#[derive(Clone, Debug)]
pub struct Headers {
    cluster_id: u64,
    member_id: u64,
    raft_term: Arc<AtomicU64>,
}

impl Headers {
    /// A stamp for one member of one cluster.
    pub fn new(cluster_id: u64, member_id: u64) -> Headers {
        Headers { cluster_id, member_id, raft_term: Arc::new(AtomicU64::new(0)) }
    }

    /// The header for a response at `revision`.
    pub fn make(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term.load(Ordering::Relaxed),
        }
    }

    /// Fills in a header the store produced (which carries only the revision).
    pub fn stamp(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map(|h| h.revision).unwrap_or_default();
        *header = Some(self.make(revision));
    }

    /// Records the current raft term, as seen in raft's metrics.
    pub fn set_raft_term(&self, term: u64) {
        self.raft_term.store(term, Ordering::Relaxed);
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }
}
