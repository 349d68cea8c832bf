//! A test PKI made fresh with rcgen: a CA, serving certificates, client certificates (etcd's
//! `--client-cert-auth` and Kubernetes read the user from the CN, Kubernetes the group from
//! the O), and the service-account token signing key pair of the k8s rig.
//!
//! Everything is ECDSA P-256, which Go's TLS and Kubernetes' token signer (ES256) accept.
//! Files are written into the rig's directory; the CA key stays in memory so that more client
//! certificates (e.g. a kubelet's `system:node:<name>`) can be issued later.

use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::sync::Mutex;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};

/// What can fail while making certificates: generating them, or writing their files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

/// Result of certificate operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The names kube-apiserver's serving certificate is valid for: loopback, and the in-cluster
/// names of the `kubernetes` Service (10.0.0.1 is the first address of the rig's service
/// range).
pub const APISERVER_SANS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
}

/// The service-account token key pair: kube-apiserver signs with the private key and verifies
/// with the public one; kube-controller-manager signs legacy token Secrets with the private one.
#[derive(Clone, Debug)]
pub struct ServiceAccountKeys {
    /// Public key (PEM).
    pub public: PathBuf,
    /// Private key (PKCS#8 PEM).
    pub private: PathBuf,
}

/// A CA able to issue certificates, with its certificate written to `ca.crt`.
pub struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The serial number of every certificate issued, by its file (for revocation lists).
    serials: Mutex<HashMap<PathBuf, u64>>,
}

impl Pki {
    /// Makes a new CA in `dir` (created if needed), writing `ca.crt`.
    pub fn create(dir: &Path) -> Result<Pki> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "oxcd-rig-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let pki = Pki { dir: dir.to_path_buf(), ca, serials: Mutex::default() };
        write(&pki.ca_cert(), &pki.ca.pem())?;
        Ok(pki)
    }

    /// The CA certificate file (`ca.crt`): trusted by clients for the apiserver and by the
    /// apiserver for client certificates.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a TLS server certificate `<name>.crt`/`<name>.key` for `sans` (IP addresses or
    /// DNS names).
    pub fn serving(&self, name: &str, sans: &[&str]) -> Result<CertFiles> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(name, params)
    }

    /// Issues a certificate `<name>.crt`/`<name>.key` for `sans` usable both to serve and to
    /// dial (etcd's peer certificates: a member presents the same one either way).
    pub fn peer(&self, name: &str, sans: &[&str]) -> Result<CertFiles> {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, params)
    }

    /// Issues a client certificate `<name>.crt`/`<name>.key` for user `cn`, in group `org` if
    /// given (Kubernetes' x509 authenticator maps CN to the user and O to a group, e.g.
    /// `system:masters` for the admin).
    pub fn client(&self, name: &str, cn: &str, org: Option<&str>) -> Result<CertFiles> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, params)
    }

    /// Makes the service-account signing key pair `sa.key`/`sa.pub`.
    pub fn service_account_keys(&self) -> Result<ServiceAccountKeys> {
        let key = KeyPair::generate()?;
        let keys = ServiceAccountKeys {
            public: self.dir.join("sa.pub"),
            private: self.dir.join("sa.key"),
        };
        write(&keys.public, &key.public_key_pem())?;
        write(&keys.private, &key.serialize_pem())?;
        Ok(keys)
    }

    /// Writes `<name>.crl`, a revocation list signed by the CA revoking `revoked` (PEM, valid
    /// for ten years).
    pub fn revocation_list(&self, name: &str, revoked: &[&CertFiles]) -> Result<PathBuf> {
        let serials = self.serials.lock().unwrap_or_else(|e| e.into_inner());
        let now = rcgen::date_time_ymd(2026, 1, 1);
        let revoked_certs = revoked
            .iter()
            .filter_map(|c| serials.get(&c.cert))
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from(*serial),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            })
            .collect();
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2036, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca)?;
        let path = self.dir.join(format!("{name}.crl"));
        write(&path, &crl.pem()?)?;
        Ok(path)
    }

    fn issue(&self, name: &str, mut params: CertificateParams) -> Result<CertFiles> {
        let key = KeyPair::generate()?;
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.crt")),
            key: self.dir.join(format!("{name}.key")),
        };
        let serial = {
            let mut serials = self.serials.lock().unwrap_or_else(|e| e.into_inner());
            let serial = 1000 + serials.len() as u64;
            serials.insert(files.cert.clone(), serial);
            serial
        };
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params.signed_by(&key, &*self.ca)?;
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io(format!("write {}", path.display()), e))
}
