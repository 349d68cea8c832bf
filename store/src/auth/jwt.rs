//! etcd's JWT tokens (`--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`).
//!
//! A token is `header.claims.signature` (base64url, no padding) with etcd's claims
//! `{"exp":<unix seconds>,"revision":<auth revision>,"username":"<name>"}` (Go's map order),
//! so tokens are exchangeable with etcd members sharing the keys. Unlike simple tokens they
//! live in no table: any member holding the public key checks one by itself, and a token
//! made before an auth change fails with `AuthOldRevision` (the client authenticates again).
//!
//! Signing goes through rustls' ring signers (PKCS#1, PKCS#8 and SEC1 keys), verifying
//! through ring with the public key's SubjectPublicKeyInfo. HMAC methods (HS*) use the raw
//! bytes of the `priv-key` file as the shared key for both, as etcd does, and need no
//! `pub-key`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::SigningKey;
use rustls::SignatureScheme;

use crate::tls::der;

/// etcd's default JWT lifetime.
const DEFAULT_TTL: Duration = Duration::from_secs(300);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The signing methods oxcd supports (etcd's RS*, PS*, ES256/ES384, EdDSA and HS*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Hs256,
    Hs384,
    Hs512,
    EdDsa,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
}

impl Method {
    fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "HS256" => Method::Hs256,
            "HS384" => Method::Hs384,
            "HS512" => Method::Hs512,
            "EdDSA" => Method::EdDsa,
            "RS256" => Method::Rs256,
            "RS384" => Method::Rs384,
            "RS512" => Method::Rs512,
            "PS256" => Method::Ps256,
            "PS384" => Method::Ps384,
            "PS512" => Method::Ps512,
            "ES256" => Method::Es256,
            "ES384" => Method::Es384,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Method::Hs256 => "HS256",
            Method::Hs384 => "HS384",
            Method::Hs512 => "HS512",
            Method::EdDsa => "EdDSA",
            Method::Rs256 => "RS256",
            Method::Rs384 => "RS384",
            Method::Rs512 => "RS512",
            Method::Ps256 => "PS256",
            Method::Ps384 => "PS384",
            Method::Ps512 => "PS512",
            Method::Es256 => "ES256",
            Method::Es384 => "ES384",
        }
    }

    /// The HMAC algorithm of an HS* method.
    fn hmac(self) -> Option<ring::hmac::Algorithm> {
        match self {
            Method::Hs256 => Some(ring::hmac::HMAC_SHA256),
            Method::Hs384 => Some(ring::hmac::HMAC_SHA384),
            Method::Hs512 => Some(ring::hmac::HMAC_SHA512),
            _ => None,
        }
    }

    /// The signature scheme of an asymmetric method (HMAC methods have none).
    fn scheme(self) -> Option<SignatureScheme> {
        Some(match self {
            Method::Hs256 | Method::Hs384 | Method::Hs512 => return None,
            Method::EdDsa => SignatureScheme::ED25519,
            Method::Rs256 => SignatureScheme::RSA_PKCS1_SHA256,
            Method::Rs384 => SignatureScheme::RSA_PKCS1_SHA384,
            Method::Rs512 => SignatureScheme::RSA_PKCS1_SHA512,
            Method::Ps256 => SignatureScheme::RSA_PSS_SHA256,
            Method::Ps384 => SignatureScheme::RSA_PSS_SHA384,
            Method::Ps512 => SignatureScheme::RSA_PSS_SHA512,
            Method::Es256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            Method::Es384 => SignatureScheme::ECDSA_NISTP384_SHA384,
        })
    }

    /// ring's verifier of an asymmetric method (HMAC methods have none).
    fn verification(self) -> Option<&'static dyn VerificationAlgorithm> {
        Some(match self {
            Method::Hs256 | Method::Hs384 | Method::Hs512 => return None,
            Method::EdDsa => &signature::ED25519,
            Method::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Method::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Method::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Method::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Method::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Method::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Method::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Method::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
        })
    }

    /// The length of each of r and s in a fixed-size ECDSA signature.
    fn ecdsa_half(self) -> Option<usize> {
        match self {
            Method::Es256 => Some(32),
            Method::Es384 => Some(48),
            _ => None,
        }
    }
}

/// A JWT token provider: signs with the private key (if given) and checks with the public
/// one, or with one shared HMAC key.
pub struct Jwt {
    method: Method,
    keys: Keys,
    ttl: Duration,
}

/// The keys of a provider.
enum Keys {
    /// RS*, PS*, ES*, EdDSA.
    Pair { signer: Option<Arc<dyn SigningKey>>, public_key: Vec<u8> },
    /// HS*: one key signs and checks.
    Shared(ring::hmac::Key),
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt").field("method", &self.method).field("ttl", &self.ttl).finish()
    }
}

impl Jwt {
    /// The provider `--auth-token` asks for: `None` for `simple`, an error (which stops the
    /// member at start, as in etcd) for unknown types, options, methods or unusable keys.
    pub fn from_flag(flag: &str) -> Result<Option<Jwt>, String> {
        let mut parts = flag.split(',');
        match parts.next().unwrap_or_default() {
            "simple" | "" => return Ok(None),
            "jwt" => {}
            other => return Err(format!("unknown token type: {other}")),
        }
        let (mut public, mut private, mut method, mut ttl) = (None, None, None, DEFAULT_TTL);
        for option in parts {
            let (k, v) = option
                .split_once('=')
                .ok_or_else(|| format!("invalid auth token option {option:?}"))?;
            match k {
                "pub-key" => public = Some(v.to_string()),
                "priv-key" => private = Some(v.to_string()),
                "sign-method" => {
                    method =
                        Some(Method::parse(v).ok_or_else(|| format!("invalid sign method {v:?}"))?)
                }
                "ttl" => {
                    ttl = crate::config::parse_duration(v)
                        .ok_or_else(|| format!("invalid ttl {v:?}"))?
                }
                other => return Err(format!("unknown token specific option: {other}")),
            }
        }
        let method = method.ok_or("jwt: sign-method is required")?;
        if let Some(algorithm) = method.hmac() {
            let path = private.ok_or("jwt: priv-key is required for HMAC sign methods")?;
            let secret = std::fs::read(&path).map_err(|e| format!("jwt: reading {path}: {e}"))?;
            if secret.is_empty() {
                return Err(format!("jwt: {path} is empty"));
            }
            let keys = Keys::Shared(ring::hmac::Key::new(algorithm, &secret));
            return Ok(Some(Jwt { method, keys, ttl }));
        }
        let public = public.ok_or("jwt: pub-key is required")?;
        let public_key = public_key_bits(Path::new(&public))?;
        let signer = match private {
            Some(path) => Some(signing_key(Path::new(&path), method)?),
            None => None,
        };
        Ok(Some(Jwt { method, keys: Keys::Pair { signer, public_key }, ttl }))
    }

    /// A token for `user` at auth `revision`, valid for the TTL from now.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, String> {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + self.ttl;
        let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, self.method.name());
        let claims = serde_json::json!({
            "exp": exp.as_secs(),
            "revision": revision,
            "username": user,
        });
        let signed = format!("{}.{}", B64.encode(header), B64.encode(claims.to_string()));
        let signature = match &self.keys {
            Keys::Shared(key) => ring::hmac::sign(key, signed.as_bytes()).as_ref().to_vec(),
            Keys::Pair { signer, .. } => {
                let signer = signer.as_ref().ok_or("jwt: no private key to sign tokens")?;
                let signer = self
                    .method
                    .scheme()
                    .and_then(|scheme| signer.choose_scheme(&[scheme]))
                    .ok_or("jwt: the private key does not match the sign method")?;
                let signature = signer.sign(signed.as_bytes()).map_err(|e| e.to_string())?;
                match self.method.ecdsa_half() {
                    Some(half) => {
                        ecdsa_fixed(&signature, half).ok_or("jwt: bad ECDSA signature")?
                    }
                    None => signature,
                }
            }
        };
        Ok(format!("{signed}.{}", B64.encode(signature)))
    }

    /// The user and auth revision of a token, if its signature checks out, its algorithm is
    /// ours and it has not expired.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, claims) = signed.split_once('.')?;
        let header: serde_json::Value = serde_json::from_slice(&B64.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != self.method.name() {
            return None;
        }
        let signature = B64.decode(signature).ok()?;
        match &self.keys {
            Keys::Shared(key) => ring::hmac::verify(key, signed.as_bytes(), &signature).ok()?,
            Keys::Pair { public_key, .. } => {
                UnparsedPublicKey::new(self.method.verification()?, public_key)
                    .verify(signed.as_bytes(), &signature)
                    .ok()?
            }
        }
        let claims: serde_json::Value = serde_json::from_slice(&B64.decode(claims).ok()?).ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if claims.get("exp")?.as_f64()? <= now as f64 {
            return None;
        }
        let user = claims.get("username")?.as_str()?.to_string();
        let revision = claims.get("revision")?.as_f64()? as u64;
        Some((user, revision))
    }
}

/// The key bits of a PEM public key (SubjectPublicKeyInfo): an RSAPublicKey or an EC point,
/// as ring verifies with them.
fn public_key_bits(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("jwt: reading {}: {e}", path.display()))?;
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(&pem)
        .map_err(|e| format!("jwt: {} is not a PEM public key: {e}", path.display()))?;
    crate::tls::der::public_key_bits(spki.as_ref())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("jwt: {}: not a usable public key", path.display()))
}

fn signing_key(path: &Path, method: Method) -> Result<Arc<dyn SigningKey>, String> {
    let key = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("jwt: {} is not a PEM private key: {e}", path.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("jwt: {}: {e}", path.display()))?;
    if method.scheme().and_then(|scheme| signer.choose_scheme(&[scheme])).is_none() {
        return Err(format!("jwt: {} cannot sign with {}", path.display(), method.name()));
    }
    Ok(signer)
}

/// An ASN.1 DER ECDSA signature (SEQUENCE of two INTEGERs) as JWT's fixed-size `r || s`.
fn ecdsa_fixed(der: &[u8], half: usize) -> Option<Vec<u8>> {
    let (tag, body, _) = der::item(der)?;
    if tag != der::SEQUENCE {
        return None;
    }
    let mut out = Vec::with_capacity(2 * half);
    let mut rest = body;
    for _ in 0..2 {
        let (tag, int, after) = der::item(rest)?;
        if tag != der::INTEGER {
            return None;
        }
        let int = match int.iter().position(|b| *b != 0) {
            Some(first) => &int[first..],
            None => &[],
        };
        if int.len() > half {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, half - int.len()));
        out.extend_from_slice(int);
        rest = after;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_keys(dir: &Path) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let (public, private) = (dir.join("pub.pem"), dir.join("priv.pem"));
        std::fs::write(&public, key.public_key_pem()).unwrap();
        std::fs::write(&private, key.serialize_pem()).unwrap();
        (public.display().to_string(), private.display().to_string())
    }

    #[test]
    fn es256_tokens_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (public, private) = write_keys(dir.path());
        let flag = format!("jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=1h");
        let jwt = Jwt::from_flag(&flag).unwrap().unwrap();
        let token = jwt.sign("alice", 7).unwrap();
        assert_eq!(jwt.verify(&token), Some(("alice".to_string(), 7)));
        let mut forged = token.clone();
        forged.replace_range(forged.len() - 3.., "AAA");
        assert_eq!(jwt.verify(&forged), None);
        assert_eq!(jwt.verify("a.b"), None);
    }

    #[test]
    fn hmac_tokens_use_the_raw_key_file_and_need_no_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("hmac.key");
        std::fs::write(&key, b"a shared secret").unwrap();
        let flag = format!("jwt,priv-key={},sign-method=HS256", key.display());
        let jwt = Jwt::from_flag(&flag).unwrap().unwrap();
        let token = jwt.sign("bob", 3).unwrap();
        assert_eq!(jwt.verify(&token), Some(("bob".to_string(), 3)));
        let (signed, _) = token.rsplit_once('.').unwrap();
        let expected = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"a shared secret"),
            signed.as_bytes(),
        );
        assert_eq!(token.rsplit_once('.').unwrap().1, B64.encode(expected.as_ref()));
        std::fs::write(&key, b"another secret").unwrap();
        let other = Jwt::from_flag(&flag).unwrap().unwrap();
        assert_eq!(other.verify(&token), None);
        assert!(Jwt::from_flag("jwt,sign-method=HS256").is_err());
    }

    #[test]
    fn eddsa_tokens_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let (public, private) = (dir.path().join("pub.pem"), dir.path().join("priv.pem"));
        std::fs::write(&public, key.public_key_pem()).unwrap();
        std::fs::write(&private, key.serialize_pem()).unwrap();
        let flag = format!(
            "jwt,pub-key={},priv-key={},sign-method=EdDSA",
            public.display(),
            private.display()
        );
        let jwt = Jwt::from_flag(&flag).unwrap().unwrap();
        let token = jwt.sign("carol", 1).unwrap();
        assert!(token.starts_with(&B64.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#)));
        assert_eq!(jwt.verify(&token), Some(("carol".to_string(), 1)));
    }

    #[test]
    fn flags_are_checked() {
        assert!(Jwt::from_flag("simple").unwrap().is_none());
        assert!(Jwt::from_flag("opaque").is_err());
        assert!(Jwt::from_flag("jwt,sign-method=ES256").is_err());
        assert!(Jwt::from_flag("jwt,pub-key=/nonexistent,sign-method=ES256").is_err());
        assert!(Jwt::from_flag("jwt,pub-key=/x,sign-method=HS1").is_err());
    }
}
