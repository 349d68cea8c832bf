//! The member: its wiring (`server::EtcdServer`), the one interface the client-facing edge
//! talks to (`handle::Member`), and the roles it runs.

pub mod compactor;
pub mod handle;
pub mod headers;
pub mod membership;
pub mod propose_batcher;
pub mod read_index;
pub mod server;
