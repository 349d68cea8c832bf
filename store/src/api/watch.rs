//! The etcd Watch service: one bidirectional stream per client `Watch` call.
//!
//! A task reads the client's requests and hands them to the stream's [`WatchControl`]; the
//! response stream drains its [`WatchReceiver`], stamps headers and splits large responses of
//! fragmenting watchers. Problems with one watcher are reported in-band (a response with
//! `canceled` and a reason), as etcd does; the stream itself only ends with an error if the
//! client's side of it failed or the member is stopping. As in etcd, a client that half-closes
//! its side keeps receiving events until it cancels the call.

use std::pin::Pin;

use futures::Stream;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::member::handle::{fragment, Headers, Member, WatchControl, WatchReceiver};
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{WatchRequest, WatchResponse};

/// Serves `etcdserverpb.Watch` from the member's watch hub.
pub struct WatchService {
    server: Member,
}

impl WatchService {
    /// The service over a member; each watch it creates must be permitted to the caller.
    pub fn new(server: Member) -> WatchService {
        WatchService { server }
    }
}

/// The response stream of one `Watch` call.
type ResponseStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let (metadata, _, inbound) = request.into_parts();
        let (control, receiver) = self.server.open_watch_stream();
        let permits = Permits { server: self.server.clone(), metadata };
        let receiving = tokio::spawn(receive_loop(inbound, control, permits));
        let headers = self.server.headers().clone();
        let output = respond(receiver, receiving, headers, self.server.watch_fragment_limit());
        Ok(Response::new(output))
    }
}

/// Feeds the client's requests to the stream until the client stops sending. A failed
/// receive (not a clean half-close) is returned so the call ends with it, as etcd returns
/// its `recvLoop` error.
async fn receive_loop(
    mut inbound: Streaming<WatchRequest>,
    control: WatchControl,
    permits: Permits,
) -> Result<(), Status> {
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => match permits.refusal(&req) {
                    Some(watch_id) => {
                        control.reject(watch_id, denied()).await
                    }
                    None => control.handle(req).await,
                },
                Ok(None) => return Ok(()),
                Err(status) => {
                    tracing::debug!(error = %status, "watch stream receive failed");
                    return Err(status);
                }
            },
            _ = control.closed() => return Ok(()),
        }
    }
}

/// etcd's cancel reason for a watch the caller may not read: the text of the gRPC status
/// error (`rpctypes.ErrGRPCPermissionDenied.Error()`), code included.
fn denied() -> String {
    format!("rpc error: code = PermissionDenied desc = {}", Error::PermissionDenied)
}

/// The permission checks of one stream (etcd's `isWatchPermitted`): each create request is
/// checked against the stream's token when it arrives, so a token that expired or a
/// permission revoked since the stream opened refuses new watches.
struct Permits {
    server: Member,
    metadata: MetadataMap,
}

impl Permits {
    /// The watch id to answer "permission denied" with, if `req` creates a watch the caller
    /// may not read.
    fn refusal(&self, req: &WatchRequest) -> Option<i64> {
        let Some(RequestUnion::CreateRequest(create)) = &req.request_union else { return None };
        let checked = self.server.check_watch(&self.metadata, &create.key, &create.range_end);
        checked.is_err().then_some(create.watch_id)
    }
}

/// The responses of one stream, in order, with full headers and etcd's fragmenting.
fn respond(
    mut receiver: WatchReceiver,
    receiving: JoinHandle<Result<(), Status>>,
    headers: Headers,
    fragment_limit: usize,
) -> ResponseStream {
    Box::pin(async_stream::stream! {
        // The receive loop is owned here: it stops when the call is dropped, and its end is
        // watched: a clean half-close keeps the responses flowing (as in etcd), a receive
        // error or a panic ends the call with an error.
        let mut receiving = AbortOnDrop(receiving);
        let mut still_receiving = true;
        loop {
            let item = tokio::select! {
                // `recv` is cancel-safe; `prev_kv` is filled after the select.
                item = receiver.recv() => item.map(|r| r.map_err(Status::from)),
                ended = &mut receiving.0, if still_receiving => match ended {
                    Ok(Ok(())) => {
                        still_receiving = false;
                        continue;
                    }
                    Ok(Err(status)) => Some(Err(status)),
                    Err(e) => {
                        tracing::error!(error = %e, "watch stream receive loop died");
                        Some(Err(Status::from(Error::internal("watch stream receive loop", e))))
                    }
                },
            };
            match item {
                Some(Ok(delivery)) => {
                    let delivery = receiver.complete(delivery).await;
                    let mut response = delivery.response;
                    headers.stamp(&mut response.header);
                    crate::metrics::WATCH_EVENTS.inc_by(response.events.len() as u64);
                    if delivery.fragment {
                        for piece in fragment(response, fragment_limit) {
                            yield Ok(piece);
                        }
                    } else {
                        yield Ok(response);
                    }
                }
                Some(Err(status)) => {
                    yield Err(status);
                    break;
                }
                None => break,
            }
        }
    })
}

/// Aborts its task when dropped: a task that serves one call ends with the call.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
