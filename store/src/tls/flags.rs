//! etcd's TLS flags, with their `ETCD_*` variables, and the files each side uses.

use std::path::{Path, PathBuf};

use clap::{ArgAction, Args};

use super::versions::VersionRange;

/// etcd's client and peer TLS flags (flattened into `Config`).
#[derive(Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// Path to the client server TLS cert file.
    #[arg(long, env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,
    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", default_value = "")]
    pub trusted_ca_file: String,
    /// Enable client cert authentication: https clients need a certificate signed by
    /// `--trusted-ca-file`, and its common name is the user of requests without a token.
    #[arg(long, env = "ETCD_CLIENT_CERT_AUTH", default_value = "false", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub client_cert_auth: bool,
    /// Client TLS using generated certificates.
    #[arg(long, env = "ETCD_AUTO_TLS", default_value = "false", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file (also the client certificate this member
    /// presents to its peers).
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", default_value = "")]
    pub peer_trusted_ca_file: String,
    /// Enable peer client cert authentication.
    #[arg(long, env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value = "false",
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = go_bool)]
    pub peer_client_cert_auth: bool,
    /// Peer TLS using generated certificates.
    #[arg(long, env = "ETCD_PEER_AUTO_TLS", default_value = "false", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = go_bool)]
    pub peer_auto_tls: bool,
    /// The only common name a peer's client certificate may have (with
    /// `--peer-client-cert-auth`).
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_CN", default_value = "")]
    pub peer_cert_allowed_cn: String,
    /// The host name a peer's client certificate must be valid for (with
    /// `--peer-client-cert-auth`).
    #[arg(long, env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub peer_cert_allowed_hostname: String,
    /// The host name a client's certificate must be valid for (with `--client-cert-auth`).
    #[arg(long, env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME", default_value = "")]
    pub client_cert_allowed_hostname: String,
    /// A certificate revocation list (PEM or DER): client certificates it revokes are
    /// refused. Read at every handshake, as etcd does, so a new list takes effect at once.
    #[arg(long, env = "ETCD_CLIENT_CRL_FILE", default_value = "")]
    pub client_crl_file: String,
    /// The same for peer certificates.
    #[arg(long, env = "ETCD_PEER_CRL_FILE", default_value = "")]
    pub peer_crl_file: String,
    /// TLS 1.2 cipher suites offered on both ports, by Go's names, comma-separated; empty:
    /// rustls' defaults. TLS 1.3 suites are not configurable, as in Go.
    #[arg(long, env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// The lowest TLS version spoken on both ports (etcd 3.6): `TLS1.2` or `TLS1.3`.
    #[arg(long, env = "ETCD_TLS_MIN_VERSION", default_value = "TLS1.2")]
    pub tls_min_version: String,
    /// The highest TLS version spoken on both ports (etcd 3.6); empty: TLS 1.3, or TLS 1.2
    /// when `--cipher-suites` names suites (etcd 3.5's rule).
    #[arg(long, env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
    /// The validity period of the client and peer certificates made by `--auto-tls` and
    /// `--peer-auto-tls`, in years.
    #[arg(long, env = "ETCD_SELF_SIGNED_CERT_VALIDITY", default_value_t = 1)]
    pub self_signed_cert_validity: u32,
}

/// The TLS files of one side (client or peer), after `--auto-tls` made its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    /// PEM certificate chain served to the other end.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
    /// PEM CA bundle the other end's certificates must chain to (empty: none given).
    pub trusted_ca_file: PathBuf,
    /// `--client-cert-auth`: the other end must present a certificate signed by
    /// `trusted_ca_file` (also required whenever a trusted CA file is given, as in etcd).
    pub client_cert_auth: bool,
    /// The only common name the other end's certificate may have (`--peer-cert-allowed-cn`);
    /// empty: any.
    pub allowed_cn: String,
    /// The host name the other end's certificate must be valid for
    /// (`--*-cert-allowed-hostname`); empty: any.
    pub allowed_hostname: String,
    /// The revocation list the other end's certificate is checked against; empty: none.
    pub crl_file: PathBuf,
    /// The TLS 1.2 cipher suites offered, by Go's names (`--cipher-suites`); empty: defaults.
    pub cipher_suites: Vec<String>,
    /// The TLS versions spoken (`--tls-min-version`, `--tls-max-version`).
    pub versions: VersionRange,
    /// Whether the certificate is self-signed by `--auto-tls`: as etcd, whoever dials with
    /// it does not verify the other end's certificate.
    pub self_signed: bool,
}

impl Side {
    /// Whether a certificate and key were given.
    pub fn has_cert(&self) -> bool {
        !self.cert_file.as_os_str().is_empty() && !self.key_file.as_os_str().is_empty()
    }
}

impl TlsFlags {
    /// The client side's files as given (before `--auto-tls`).
    pub fn client_side(&self) -> Side {
        Side {
            cert_file: self.cert_file.clone().into(),
            key_file: self.key_file.clone().into(),
            trusted_ca_file: self.trusted_ca_file.clone().into(),
            client_cert_auth: self.client_cert_auth,
            allowed_cn: String::new(),
            allowed_hostname: self.client_cert_allowed_hostname.clone(),
            crl_file: self.client_crl_file.clone().into(),
            cipher_suites: self.cipher_suite_names(),
            versions: self.version_range().unwrap_or_default(),
            self_signed: false,
        }
    }

    /// The peer side's files as given (before `--peer-auto-tls`).
    pub fn peer_side(&self) -> Side {
        Side {
            cert_file: self.peer_cert_file.clone().into(),
            key_file: self.peer_key_file.clone().into(),
            trusted_ca_file: self.peer_trusted_ca_file.clone().into(),
            client_cert_auth: self.peer_client_cert_auth,
            allowed_cn: self.peer_cert_allowed_cn.clone(),
            allowed_hostname: self.peer_cert_allowed_hostname.clone(),
            crl_file: self.peer_crl_file.clone().into(),
            cipher_suites: self.cipher_suite_names(),
            versions: self.version_range().unwrap_or_default(),
            self_signed: false,
        }
    }

    /// `--tls-min-version` and `--tls-max-version`, refused with etcd's messages where etcd
    /// refuses them (checked at start; the sides fall back to the defaults only if unchecked).
    pub fn version_range(&self) -> Result<VersionRange, String> {
        VersionRange::from_flags(
            &self.tls_min_version,
            &self.tls_max_version,
            &self.cipher_suite_names(),
        )
    }

    /// `--cipher-suites` as a list.
    pub fn cipher_suite_names(&self) -> Vec<String> {
        let names = self.cipher_suites.split(',').map(str::trim).filter(|s| !s.is_empty());
        names.map(String::from).collect()
    }

    /// The client side in force: the given files, or with `--auto-tls` and no certificate a
    /// self-signed one for `hosts` under `<data-dir>/fixtures/client` (etcd's place), made
    /// again at every start.
    pub fn resolve_client(&self, data_dir: &Path, hosts: &[String]) -> super::Result<Side> {
        let side = self.client_side();
        if side.has_cert() || !self.auto_tls {
            return Ok(side);
        }
        let dir = data_dir.join("fixtures").join("client");
        let made = super::self_signed::make(&dir, hosts, self.self_signed_cert_validity)?;
        let (cipher_suites, versions) = (side.cipher_suites, side.versions);
        Ok(Side { client_cert_auth: false, self_signed: true, cipher_suites, versions, ..made })
    }

    /// The peer side in force, as `resolve_client` with `--peer-auto-tls` under
    /// `<data-dir>/fixtures/peer`.
    pub fn resolve_peer(&self, data_dir: &Path, hosts: &[String]) -> super::Result<Side> {
        let side = self.peer_side();
        if side.has_cert() || !self.peer_auto_tls {
            return Ok(side);
        }
        let dir = data_dir.join("fixtures").join("peer");
        let made = super::self_signed::make(&dir, hosts, self.self_signed_cert_validity)?;
        // A self-signed peer certificate cannot be verified by the other members.
        let (cipher_suites, versions) = (side.cipher_suites, side.versions);
        Ok(Side { client_cert_auth: false, self_signed: true, cipher_suites, versions, ..made })
    }
}

/// Go's `strconv.ParseBool`, which etcd's boolean flags use.
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("invalid boolean value {other:?}")),
    }
}
