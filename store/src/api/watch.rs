//! TEMPORARY STUB written by the lead so the crate compiles; the watch engineer replaces this file.
use std::sync::Arc;
use crate::api::Headers;
use crate::watch::WatchHub;
/// Stub.
pub struct WatchService;
impl WatchService {
    /// Stub.
    pub fn new(_hub: Arc<WatchHub>, _headers: Headers) -> WatchService { WatchService }
}
#[tonic::async_trait]
impl crate::pb::etcdserverpb::watch_server::Watch for WatchService {
    type WatchStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<crate::pb::etcdserverpb::WatchResponse, tonic::Status>> + Send>>;
    async fn watch(&self, _r: tonic::Request<tonic::Streaming<crate::pb::etcdserverpb::WatchRequest>>) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stub"))
    }
}
