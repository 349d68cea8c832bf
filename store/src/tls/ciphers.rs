//! `--cipher-suites`: etcd takes Go's TLS 1.2 cipher suite names; each becomes the rustls suite
//! of that name. Go's names rustls does not implement (CBC, RC4, 3DES, RSA key exchange) are
//! accepted, as etcd accepts them, but cannot be offered: a warning says so. Which TLS versions
//! are spoken with suites named is `versions`' business.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::SupportedCipherSuite;

/// Every name etcd's `tlsutil.GetCipherSuite` knows (Go's `tls` constants; the ChaCha20
/// suites also under their newer `_SHA256` names).
const GO_NAMES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// etcd's refusal of a name it does not know.
pub fn check(names: &[String]) -> Result<(), String> {
    match names.iter().find(|n| !GO_NAMES.contains(&n.as_str())) {
        Some(unknown) => Err(format!("unexpected TLS cipher suite {unknown:?}")),
        None => Ok(()),
    }
}

/// rustls' name of a suite in Go's spelling (Go's ChaCha20 names lack the `_SHA256`).
fn rustls_name(suite: &SupportedCipherSuite) -> String {
    format!("{:?}", suite.suite())
}

/// `base` offering only the TLS 1.2 suites `names` (Go's names) and every TLS 1.3 suite;
/// `base` itself when `names` is empty.
pub fn restrict(base: CryptoProvider, names: &[String]) -> Arc<CryptoProvider> {
    if names.is_empty() {
        return Arc::new(base);
    }
    let wanted: Vec<String> = names
        .iter()
        .map(|n| match n.strip_suffix("_CHACHA20_POLY1305") {
            Some(prefix) => format!("{prefix}_CHACHA20_POLY1305_SHA256"),
            None => n.clone(),
        })
        .collect();
    let offered: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_some() || wanted.contains(&rustls_name(s)))
        .copied()
        .collect();
    for name in &wanted {
        if !offered.iter().any(|s| &rustls_name(s) == name) {
            tracing::warn!(cipher_suite = %name, "cipher suite not implemented by rustls; not offered");
        }
    }
    Arc::new(CryptoProvider { cipher_suites: offered, ..base })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_names_are_refused_with_etcds_message() {
        assert_eq!(check(&names(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"])), Ok(()));
        assert_eq!(
            check(&names(&["TLS_NOPE"])),
            Err("unexpected TLS cipher suite \"TLS_NOPE\"".into())
        );
    }

    #[test]
    fn only_the_named_tls12_suites_remain() {
        let base = rustls::crypto::ring::default_provider();
        let p = restrict(
            base,
            &names(&[
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
            ]),
        );
        let tls12: Vec<String> =
            p.cipher_suites.iter().filter(|s| s.tls13().is_none()).map(rustls_name).collect();
        assert_eq!(
            tls12,
            names(&[
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
            ])
        );
        // TLS 1.3's suites are not configurable (as in Go): they stay, for
        // `--tls-max-version=TLS1.3`.
        assert!(p.cipher_suites.iter().any(|s| s.tls13().is_some()));
    }
}
