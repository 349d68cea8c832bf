//! An in-process gRPC connection to the member's own services: each connection the channel
//! opens is one end of an in-memory pipe, the other end served by the gRPC router over
//! HTTP/2. No socket, no TLS, no client certificate: requests carry only what the gateway
//! puts in them (the token).

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tonic::transport::{Channel, Endpoint};

/// Bytes buffered in each direction of an in-process connection.
const PIPE_BYTES: usize = 256 * 1024;

/// A lazily connecting channel whose connections are served by `grpc`.
pub fn channel(grpc: axum::Router) -> Channel {
    let connector = tower::service_fn(move |_: axum::http::Uri| {
        let grpc = grpc.clone();
        async move {
            let (client, server) = tokio::io::duplex(PIPE_BYTES);
            tokio::spawn(async move {
                let service = TowerToHyperService::new(grpc);
                let served = auto::Builder::new(TokioExecutor::new())
                    .http2_only()
                    .serve_connection(TokioIo::new(server), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "gateway loopback connection ended");
                }
            });
            Ok::<_, std::io::Error>(TokioIo::new(client))
        }
    });
    Endpoint::from_static("http://gateway.loopback").connect_with_connector_lazy(connector)
}
