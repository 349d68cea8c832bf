//! How a member dials https URLs of other members: peer URLs (raft, joining) with the peer
//! certificate as client certificate and `--peer-trusted-ca-file` as roots, and the leader's
//! client URL (forwarded Cluster calls) with the client-side files, as etcd's own clients do.
//!
//! The configurations are installed once at start (`install`); `channel` is what the raft
//! network and the member's forwarding use for every URL. The TLS is done by our own tonic
//! connector over tokio-rustls, so it works whatever TLS features tonic was built with, and
//! the client certificate is read again when its files change (`ReloadingCert`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use super::server::{roots, ReloadingCert};
use super::{Side, TlsError};

/// Which files a dial uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dial {
    /// Another member's peer URL.
    Peer,
    /// Another member's client URL.
    Client,
}

struct Dialers {
    peer: Arc<rustls::ClientConfig>,
    client: Arc<rustls::ClientConfig>,
}

static DIALERS: OnceLock<Dialers> = OnceLock::new();

/// Installs the configurations `channel` uses for https URLs. Called once at start; later
/// calls (tests starting several members in one process) keep the first.
pub fn install(peer: &Side, client: &Side) -> super::Result<()> {
    let dialers = Dialers { peer: config(peer)?, client: config(client)? };
    let _ = DIALERS.set(dialers);
    Ok(())
}

/// The rustls client configuration for dialing with `side`'s files.
pub fn config(side: &Side) -> super::Result<Arc<rustls::ClientConfig>> {
    let provider = super::provider_for(side);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(side.versions.protocols())
        .map_err(|source| TlsError::Rustls { context: "TLS protocol versions", source })?;
    let builder = if side.self_signed {
        // etcd's `--auto-tls`/`--peer-auto-tls` members skip verifying each other.
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else if side.trusted_ca_file.as_os_str().is_empty() {
        builder.with_root_certificates(RootCertStore::empty())
    } else {
        builder.with_root_certificates(roots(&side.trusted_ca_file)?)
    };
    let mut config = if side.has_cert() {
        let cert = ReloadingCert::load(&side.cert_file, &side.key_file)?;
        builder.with_client_cert_resolver(Arc::new(ClientCert(cert)))
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A lazily connecting gRPC channel to `url` (http or https).
pub fn channel(url: &str, dial: Dial) -> Result<Channel, tonic::transport::Error> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Ok(endpoint(url.to_string())?.connect_lazy());
    };
    let hostport = rest.split('/').next().unwrap_or_default().to_string();
    // tonic sees a plain URL; the connector below does the TLS.
    let endpoint = endpoint(format!("http://{hostport}"))?;
    let config = match (DIALERS.get(), dial) {
        (Some(d), Dial::Peer) => d.peer.clone(),
        (Some(d), Dial::Client) => d.client.clone(),
        (None, _) => match config(&Side::default()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "no TLS client configuration");
                return Ok(endpoint.connect_lazy());
            }
        },
    };
    let connector = tower::service_fn(move |_: axum::http::Uri| {
        let (config, hostport) = (config.clone(), hostport.clone());
        async move { connect(config, &hostport).await }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

fn endpoint(url: String) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url)?.connect_timeout(Duration::from_secs(1)).tcp_nodelay(true))
}

async fn connect(
    config: Arc<rustls::ClientConfig>,
    hostport: &str,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    let (host, _) = hostport
        .rsplit_once(':')
        .ok_or_else(|| std::io::Error::other(format!("{hostport:?} has no port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(hostport).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
    Ok(TokioIo::new(tls))
}

/// The client certificate, reloaded as the served one is.
#[derive(Debug)]
struct ClientCert(ReloadingCert);

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts any server certificate (signatures are still checked): only for self-signed
/// `--auto-tls` certificates, which nothing could verify.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
