//! A TLS listener for axum: TCP connections whose handshake finished, each with the common
//! name of the client certificate it presented.
//!
//! Each handshake runs on its own task with a deadline, so a slow or hostile client never
//! holds up the others; a failed handshake is logged and dropped, as etcd does. The common
//! name reaches handlers as the `CERT_CN_KEY` header (`client_identity`), which `AuthStore`
//! makes the user of requests without a token when `--client-cert-auth` is on.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use axum::serve::IncomingStream;

use crate::auth::CERT_CN_KEY;
use crate::serve::conn_limit::LimitedListener;
use crate::serve::h2_authority::AuthorityFix;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting to be served (the accept loop waits when it is full).
const ACCEPT_QUEUE: usize = 128;
/// Handshakes in progress at once; further connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;
/// Pause after an accept error that is not about one connection (e.g. out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Where a TLS connection comes from, and who its certificate says it is.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The remote socket address.
    pub addr: SocketAddr,
    /// The common name of the verified client certificate, if one was presented.
    pub common_name: Option<String>,
}

/// A TLS connection, with etcdctl 3.4's `:authority` repaired as on plain connections.
pub type Conn = AuthorityFix<TlsStream<TcpStream>>;

/// A listener whose connections have finished their TLS handshake.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(Conn, Peer)>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `config` on a bound listener.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { local, ready, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(Conn, Peer)>,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
        let (stream, addr) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a TLS connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let common_name = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(common_name);
                    let _ = ready.send((AuthorityFix::new(tls), Peer { addr, common_name })).await;
                }
                // etcd logs refused handshakes (a wrong CA, plain HTTP) and goes on.
                Ok(Err(e)) => tracing::info!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::info!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (the runtime is shutting down): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer { addr: self.local, common_name: None })
    }
}

/// The subject common name of a DER certificate.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    crate::tls::der::common_name(cert.as_ref())
}

/// Puts the `Peer` of a TLS client connection in its requests' extensions (axum's connect
/// info), for `client_identity`.
impl axum::extract::connect_info::Connected<IncomingStream<'_, LimitedListener<TlsListener>>>
    for Peer
{
    fn connect_info(stream: IncomingStream<'_, LimitedListener<TlsListener>>) -> Peer {
        stream.remote_addr().clone()
    }
}

/// Client router middleware: drops any certificate name a client sent as a header, then
/// passes on the one its TLS connection verified (axum's connect info: the `Peer`), for `AuthStore` to read.
/// Runs on plain listeners too, where it only drops the header.
pub async fn client_identity(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    req.headers_mut().remove(CERT_CN_KEY);
    let cn = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .and_then(|info| info.0.common_name.clone());
    if let Some(value) = cn.and_then(|cn| axum::http::HeaderValue::from_str(&cn).ok()) {
        req.headers_mut().insert(CERT_CN_KEY, value);
    }
    next.run(req).await
}
