//! etcd's `--auto-tls` and `--peer-auto-tls`: a self-signed ECDSA P-256 certificate for the
//! member's hosts, valid `--self-signed-cert-validity` years, written as `cert.pem` and
//! `key.pem` (etcd's `transport.SelfCert`). Made again at every start, as etcd does.

use std::path::Path;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

use super::{Side, TlsError};

/// Makes the certificate and key under `dir` for `hosts` (IP addresses or DNS names).
pub fn make(dir: &Path, hosts: &[String], validity_years: u32) -> super::Result<Side> {
    let fail = |e: rcgen::Error| TlsError::SelfSigned(e.to_string());
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(fail)?;
    params.distinguished_name.push(DnType::OrganizationName, "etcd");
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(validity_years.max(1)));
    let key = KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let read_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Read { path, source }
    };
    std::fs::create_dir_all(dir).map_err(read_err(dir))?;
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&cert_file, cert.pem()).map_err(read_err(&cert_file))?;
    write_private(&key_file, &key.serialize_pem()).map_err(read_err(&key_file))?;
    Ok(Side { cert_file, key_file, ..Side::default() })
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(pem.as_bytes())
}
