//! `--tls-min-version` / `--tls-max-version` (etcd 3.6): which TLS versions both ports speak.
//!
//! etcd 3.6 takes `TLS1.2` and `TLS1.3` only, refuses a minimum above the maximum, and refuses
//! cipher suites when only TLS 1.3 is left (its suites cannot be chosen). Without a maximum,
//! named cipher suites keep etcd 3.5's rule (TLS 1.2 alone, measured on 3.5.1); etcd 3.6.17
//! then also speaks TLS 1.3, so a 3.6 user who wants both says `--tls-max-version=TLS1.3`.

use rustls::SupportedProtocolVersion;

/// A TLS version etcd lets one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `TLS1.2`
    Tls12,
    /// `TLS1.3`
    Tls13,
}

impl TlsVersion {
    /// A flag's value; empty means not set (Go's default).
    pub fn parse(flag: &str) -> Result<Option<TlsVersion>, String> {
        match flag {
            "" => Ok(None),
            "TLS1.2" => Ok(Some(TlsVersion::Tls12)),
            "TLS1.3" => Ok(Some(TlsVersion::Tls13)),
            other => {
                Err(format!("unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"))
            }
        }
    }

    /// etcd's spelling, as its messages show it.
    fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS1.2",
            TlsVersion::Tls13 => "TLS1.3",
        }
    }
}

/// The versions one side speaks, resolved from the two flags and `--cipher-suites`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    /// The lowest version spoken.
    pub min: TlsVersion,
    /// The highest version spoken.
    pub max: TlsVersion,
}

impl Default for VersionRange {
    /// No version flag and no cipher suites: TLS 1.2 and 1.3.
    fn default() -> Self {
        VersionRange { min: TlsVersion::Tls12, max: TlsVersion::Tls13 }
    }
}

impl VersionRange {
    /// The range the flags ask for, refused with etcd 3.6's messages where it does. An
    /// empty minimum is TLS 1.2; an empty maximum TLS 1.3, or TLS 1.2 when cipher suites
    /// are named (etcd 3.5's rule).
    pub fn from_flags(min: &str, max: &str, cipher_suites: &[String]) -> Result<Self, String> {
        let (min, max) = (TlsVersion::parse(min)?, TlsVersion::parse(max)?);
        if let (Some(min), Some(max)) = (min, max) {
            if min > max {
                return Err(format!(
                    "min version ({}) is greater than max version ({})",
                    min.name(),
                    max.name()
                ));
            }
        }
        if min == Some(TlsVersion::Tls13) && !cipher_suites.is_empty() {
            return Err("cipher suites cannot be configured when only TLS1.3 is enabled".into());
        }
        let default_max =
            if cipher_suites.is_empty() { TlsVersion::Tls13 } else { TlsVersion::Tls12 };
        let min = min.unwrap_or(TlsVersion::Tls12);
        // A minimum of TLS 1.3 with no maximum (and so no suites) speaks TLS 1.3.
        let max = max.unwrap_or(default_max).max(min);
        Ok(VersionRange { min, max })
    }

    /// The rustls protocol versions of this range.
    pub fn protocols(&self) -> &'static [&'static SupportedProtocolVersion] {
        match (self.min, self.max) {
            (TlsVersion::Tls12, TlsVersion::Tls12) => TLS12_ONLY,
            (TlsVersion::Tls12, TlsVersion::Tls13) => rustls::DEFAULT_VERSIONS,
            // A minimum above the maximum is refused by `from_flags`.
            (TlsVersion::Tls13, _) => TLS13_ONLY,
        }
    }
}

static TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

#[cfg(test)]
mod tests {
    use super::*;

    fn suites() -> Vec<String> {
        vec!["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_string()]
    }

    #[test]
    fn etcd_36s_refusals() {
        assert_eq!(
            VersionRange::from_flags("TLS1.1", "", &[]),
            Err("unexpected TLS version \"TLS1.1\" (must be one of: TLS1.2, TLS1.3)".into())
        );
        assert_eq!(
            VersionRange::from_flags("TLS1.3", "TLS1.2", &[]),
            Err("min version (TLS1.3) is greater than max version (TLS1.2)".into())
        );
        assert_eq!(
            VersionRange::from_flags("TLS1.3", "", &suites()),
            Err("cipher suites cannot be configured when only TLS1.3 is enabled".into())
        );
        assert!(VersionRange::from_flags("", "", &suites()).is_ok());
    }

    #[test]
    fn the_range_spoken() {
        let spoken = |min, max, suites: &[String]| {
            let range = VersionRange::from_flags(min, max, suites).unwrap();
            range.protocols().iter().map(|v| v.version).collect::<Vec<_>>()
        };
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(spoken("TLS1.2", "", &[]), vec![TLSv1_3, TLSv1_2]);
        assert_eq!(spoken("TLS1.3", "", &[]), vec![TLSv1_3]);
        assert_eq!(spoken("TLS1.2", "TLS1.2", &[]), vec![TLSv1_2]);
        assert_eq!(spoken("TLS1.2", "", &suites()), vec![TLSv1_2]);
        assert_eq!(spoken("TLS1.2", "TLS1.3", &suites()), vec![TLSv1_3, TLSv1_2]);
    }
}
