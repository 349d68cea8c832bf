//! The member: what API handlers talk to (`server::EtcdServer`), and the roles it runs.

pub mod compactor;
pub mod headers;
pub mod membership;
pub mod propose_batcher;
pub mod read_index;
pub mod server;
