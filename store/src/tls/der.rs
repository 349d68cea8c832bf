//! The little DER reading TLS and JWT need: a certificate's subject common name, a public
//! key's bits, an ECDSA signature's integers. Hand-written rather than a full X.509 parser
//! (which would rebuild RocksDB's build tools through shared build dependencies); every
//! function returns `None` on anything malformed and never panics.

/// Tag of a SEQUENCE.
pub const SEQUENCE: u8 = 0x30;
/// Tag of an INTEGER.
pub const INTEGER: u8 = 0x02;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const EXPLICIT_0: u8 = 0xa0;
/// The OID of `commonName` (2.5.4.3), encoded.
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

/// One DER item at the start of `der`: (tag, contents, what follows).
pub fn item(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| acc << 8 | *b as usize);
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The contents of the item with `tag` at the start of `der`, and what follows.
fn expect(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, body, rest) = item(der)?;
    (t == tag).then_some((body, rest))
}

/// The subject common name of a DER certificate.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    if tbs.first() == Some(&EXPLICIT_0) {
        tbs = item(tbs)?.2; // version
    }
    // serial, signature algorithm, issuer, validity, then the subject.
    for _ in 0..4 {
        tbs = item(tbs)?.2;
    }
    let (mut subject, _) = expect(tbs, SEQUENCE)?;
    while !subject.is_empty() {
        let (rdn, rest) = expect(subject, SET)?;
        subject = rest;
        let mut attrs = rdn;
        while !attrs.is_empty() {
            let (attr, rest) = expect(attrs, SEQUENCE)?;
            attrs = rest;
            let (oid, value) = expect(attr, OID)?;
            if oid == CN_OID {
                let (_, text, _) = item(value)?;
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
}

/// The key bits of a DER SubjectPublicKeyInfo (an RSAPublicKey or an EC point).
pub fn public_key_bits(spki: &[u8]) -> Option<&[u8]> {
    let (info, _) = expect(spki, SEQUENCE)?;
    let (_, after_algorithm) = expect(info, SEQUENCE)?;
    let (bits, _) = expect(after_algorithm, BIT_STRING)?;
    let (&unused, bits) = bits.split_first()?;
    (unused == 0).then_some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_common_name_and_key_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "org");
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("alice"));
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let bits = public_key_bits(&spki).unwrap();
        assert_eq!(bits, key.public_key_raw());
        assert_eq!(common_name(&cert.der()[..40]), None);
        assert_eq!(common_name(b""), None);
        assert_eq!(item(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
    }
}
