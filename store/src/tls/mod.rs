//! TLS with rustls on the client and peer ports, from etcd's flags.
//!
//! - `flags`: etcd's TLS flags and `ETCD_*` variables (`--cert-file`, `--peer-auto-tls`, ...),
//!   and which files each side uses (`Side`).
//! - `server`: the rustls server configuration of a side. Certificates are read again on new
//!   handshakes when their files change (etcd re-reads them on every handshake), so a renewed
//!   certificate is served without a restart.
//! - `client`: the rustls client configuration members use to dial each other's https peer
//!   URLs (and the leader's client URL), with the peer certificate as client certificate.
//! - `self_signed`: `--auto-tls` and `--peer-auto-tls`.
//! - `ciphers`: `--cipher-suites` (Go's names) to rustls' suites.
//! - `versions`: `--tls-min-version`/`--tls-max-version`, the TLS versions spoken.
//! - `revocation`: `--client-crl-file`/`--peer-crl-file` and `--*-cert-allowed-hostname`,
//!   the checks a verified certificate still has to pass.
//! - `der`: the few DER fields read from certificates and keys (common name, key bits).
//!
//! Foundation: uses no other module of the crate (the TLS listener is `serve::tls_listener`).
//! Owns certificate files and outgoing sockets only; never touches the stores.

pub mod ciphers;
pub mod client;
pub mod der;
pub mod flags;
pub mod revocation;
pub mod self_signed;
pub mod server;
pub mod versions;

pub use flags::{Side, TlsFlags};

/// What can go wrong setting TLS up: a missing or unreadable file, a certificate or key that
/// does not parse, flags that cannot work together.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but holds nothing usable.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("{context}: {source}")]
    Rustls {
        /// What was being configured.
        context: &'static str,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// Flags that cannot work together (e.g. an https URL without a certificate).
    #[error("{0}")]
    Config(String),
    /// `--auto-tls` could not make its certificate.
    #[error("generating a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// Result of TLS setup.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;

/// The process-wide rustls crypto provider (ring), named once so every configuration uses the
/// same one whatever other crates enable.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// `provider()` offering only `side`'s `--cipher-suites` for TLS 1.2.
pub fn provider_for(side: &Side) -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    ciphers::restrict(rustls::crypto::ring::default_provider(), &side.cipher_suites)
}
