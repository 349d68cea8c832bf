//! The checks etcd makes on a certificate that already chains to the trusted CA: that its
//! serial is not in the revocation list (`--client-crl-file`, `--peer-crl-file`: read at every
//! handshake and compared by serial, as etcd's `checkCRL`), and that it is valid for the
//! allowed host name (`--*-cert-allowed-hostname`, Go's `VerifyHostname`).

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName};

/// Whether the CRL file revokes `cert`. An unreadable or malformed list is an error, which
/// refuses the connection, as in etcd.
pub fn revoked(crl_file: &Path, cert: &CertificateDer<'_>) -> Result<bool, String> {
    let bytes = std::fs::read(crl_file).map_err(|e| format!("{}: {e}", crl_file.display()))?;
    let der = if bytes.starts_with(b"-----") {
        CertificateRevocationListDer::from_pem_slice(&bytes)
            .map_err(|e| format!("{}: {e:?}", crl_file.display()))?
    } else {
        CertificateRevocationListDer::from(bytes)
    };
    let crl: webpki::CertRevocationList<'_> =
        webpki::BorrowedCertRevocationList::from_der(der.as_ref())
            .map_err(|e| format!("{}: {e}", crl_file.display()))?
            .into();
    let cert = webpki::EndEntityCert::try_from(cert).map_err(|e| e.to_string())?;
    let found = crl.find_serial(cert.serial()).map_err(|e| e.to_string())?;
    Ok(found.is_some())
}

/// Whether `cert` is valid for `hostname` (a DNS name or an IP address in its SANs).
pub fn valid_for_hostname(cert: &CertificateDer<'_>, hostname: &str) -> bool {
    let Ok(name) = ServerName::try_from(hostname) else { return false };
    let Ok(cert) = webpki::EndEntityCert::try_from(cert) else { return false };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
        IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };

    #[test]
    fn a_revoked_serial_is_found_and_others_are_not() {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let issue = |serial: u64| {
            let mut p = CertificateParams::new(vec!["node.example".into()]).unwrap();
            p.serial_number = Some(SerialNumber::from(serial));
            p.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap()
        };
        let (good, bad) = (issue(7), issue(9));
        let now = rcgen::date_time_ymd(2026, 1, 1);
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2036, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(9u64),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca)
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("crl.pem");
        std::fs::write(&pem, crl.pem().unwrap()).unwrap();
        let der = dir.path().join("crl.der");
        std::fs::write(&der, crl.der()).unwrap();
        for file in [&pem, &der] {
            assert_eq!(revoked(file, good.der()), Ok(false));
            assert_eq!(revoked(file, bad.der()), Ok(true));
        }
        assert!(revoked(&dir.path().join("missing"), good.der()).is_err());
        std::fs::write(&der, b"garbage").unwrap();
        assert!(revoked(&der, good.der()).is_err());
        assert!(valid_for_hostname(good.der(), "node.example"));
        assert!(!valid_for_hostname(good.der(), "other.example"));
        assert!(!valid_for_hostname(good.der(), "not a name"));
    }
}
