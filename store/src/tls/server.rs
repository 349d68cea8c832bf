//! The rustls server configuration of one side (client or peer port).
//!
//! - ALPN offers h2 and http/1.1, so gRPC and the HTTP endpoints share the port as without TLS.
//! - With client certificate auth or a trusted CA file, the other end must present a
//!   certificate chaining to the trusted CA (Go's `RequireAndVerifyClientCert`, as etcd); a refused certificate gets Go's
//!   `bad_certificate` alert, so clients print what they print against etcd.
//! - The served certificate is read again when its files change (`ReloadingCert`).

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};

use super::{Side, TlsError};

/// The server configuration for `side` (which must have a certificate).
pub fn config(side: &Side) -> super::Result<Arc<rustls::ServerConfig>> {
    let provider = super::provider_for(side);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(side.versions.protocols())
        .map_err(|source| TlsError::Rustls { context: "TLS protocol versions", source })?;
    // etcd (`TLSInfo.ServerConfig`) requires a verified client certificate as soon as a
    // trusted CA file is given, with or without client cert auth; the flag only adds the
    // certificate's CN as the user.
    let builder = if side.client_cert_auth || !side.trusted_ca_file.as_os_str().is_empty() {
        let roots = roots(&side.trusted_ca_file)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))?;
        let allowed_cn = (!side.allowed_cn.is_empty()).then(|| side.allowed_cn.clone());
        let allowed_hostname =
            (!side.allowed_hostname.is_empty()).then(|| side.allowed_hostname.clone());
        let crl_file = (!side.crl_file.as_os_str().is_empty()).then(|| side.crl_file.clone());
        let verifier = GoAlerts { inner: verifier, allowed_cn, allowed_hostname, crl_file };
        builder.with_client_cert_verifier(Arc::new(verifier))
    } else {
        builder.with_no_client_auth()
    };
    let resolver = ReloadingCert::load(&side.cert_file, &side.key_file)?;
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file.
pub fn certs(path: &Path) -> super::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    certs_from(path, &pem)
}

fn certs_from(path: &Path, pem: &[u8]) -> super::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_err(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(parse_err(path, "no certificate in the file".into()));
    }
    Ok(certs)
}

/// The CA certificates of a PEM bundle, as trust roots.
pub fn roots(ca_file: &Path) -> super::Result<RootCertStore> {
    if ca_file.as_os_str().is_empty() {
        return Err(TlsError::Config(
            "client certificate auth needs a trusted CA file (--trusted-ca-file, \
             --peer-trusted-ca-file)"
                .into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_file)? {
        roots.add(cert).map_err(|e| parse_err(ca_file, format!("a CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> super::Result<PrivateKeyDer<'static>> {
    let pem = read(path)?;
    key_from(path, &pem)
}

fn key_from(path: &Path, pem: &[u8]) -> super::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| parse_err(path, format!("no usable private key: {e}")))
}

/// A certificate chain and key parsed together.
pub fn certified_key(
    cert: &[u8],
    key: &[u8],
    paths: (&Path, &Path),
) -> super::Result<CertifiedKey> {
    let chain = certs_from(paths.0, cert)?;
    let key = key_from(paths.1, key)?;
    CertifiedKey::from_der(chain, key, &super::provider())
        .map_err(|source| TlsError::Rustls { context: "the certificate and its key", source })
}

fn read(path: &Path) -> super::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

fn parse_err(path: &Path, message: String) -> TlsError {
    TlsError::Parse { path: path.display().to_string(), message }
}

/// The served certificate, read again on a new handshake when either file changed (size,
/// modification time or inode), as etcd reads its files on every handshake. A rewrite that
/// cannot be used (half-written, key not matching) is logged and the last good certificate
/// stays in use, so a botched renewal does not take the port down.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamp: Option<(Stamp, Stamp)>,
    key: Arc<CertifiedKey>,
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() }
    }
}

impl ReloadingCert {
    /// Reads the files now: a member with unusable certificate files does not start.
    pub fn load(cert_file: &Path, key_file: &Path) -> super::Result<ReloadingCert> {
        let stamp = stamps(cert_file, key_file);
        let key = certified_key(&read(cert_file)?, &read(key_file)?, (cert_file, key_file))?;
        Ok(ReloadingCert {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: Mutex::new(Loaded { stamp, key: Arc::new(key) }),
        })
    }

    /// The certificate to serve now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = stamps(&self.cert_file, &self.key_file);
        if stamp.is_some() && stamp == loaded.stamp {
            return loaded.key.clone();
        }
        let fresh = read(&self.cert_file).and_then(|cert| {
            let key = read(&self.key_file)?;
            certified_key(&cert, &key, (&self.cert_file, &self.key_file))
        });
        match fresh {
            Ok(key) => {
                tracing::info!(cert = %self.cert_file.display(), "loaded a changed TLS certificate");
                *loaded = Loaded { stamp, key: Arc::new(key) };
            }
            Err(e) => {
                // Remember the stamp so a broken file is not re-parsed on every handshake.
                tracing::warn!(error = %e, "changed TLS certificate files are unusable; still serving the previous certificate");
                loaded.stamp = stamp;
            }
        }
        loaded.key.clone()
    }
}

fn stamps(cert_file: &Path, key_file: &Path) -> Option<(Stamp, Stamp)> {
    let cert = std::fs::metadata(cert_file).ok()?;
    let key = std::fs::metadata(key_file).ok()?;
    Some((Stamp::of(&cert), Stamp::of(&key)))
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A client certificate verifier that answers every refusal with `bad_certificate`, the alert
/// Go's TLS server sends, after logging rustls' own reason; and, with an allowed common name
/// (`--peer-cert-allowed-cn`), refuses certificates with another one, as etcd does.
#[derive(Debug)]
struct GoAlerts {
    inner: Arc<dyn ClientCertVerifier>,
    allowed_cn: Option<String>,
    allowed_hostname: Option<String>,
    crl_file: Option<PathBuf>,
}

impl ClientCertVerifier for GoAlerts {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let refused = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
        let verified =
            self.inner.verify_client_cert(end_entity, intermediates, now).map_err(|e| {
                tracing::info!(error = %e, "client certificate refused");
                refused()
            })?;
        if let Some(allowed) = &self.allowed_cn {
            let cn = super::der::common_name(end_entity.as_ref());
            if cn.as_deref() != Some(allowed.as_str()) {
                tracing::info!(?cn, %allowed, "client certificate refused: common name not allowed");
                return Err(refused());
            }
        }
        if let Some(hostname) = &self.allowed_hostname {
            if !super::revocation::valid_for_hostname(end_entity, hostname) {
                tracing::info!(%hostname, "client certificate refused: not valid for the allowed host name");
                return Err(refused());
            }
        }
        if let Some(crl_file) = &self.crl_file {
            match super::revocation::revoked(crl_file, end_entity) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!("client certificate refused: revoked by the CRL");
                    return Err(refused());
                }
                Err(error) => {
                    tracing::warn!(%error, "client certificate refused: the CRL cannot be read");
                    return Err(refused());
                }
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
