//! An S3-compatible bucket as an `object_store::ObjectStore`: path-style requests (what MinIO,
//! Ceph and moto serve), plain HTTP allowed only when the endpoint says `http://`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::ObjectStore;

use super::api::{Destination, S3Bucket, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use super::{BackupError, Result};

/// An access key pair.
#[derive(Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, not even in a debug log.
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish()
    }
}

impl Credentials {
    /// From the keys of a Secret's data.
    pub fn from_map(map: &BTreeMap<String, Vec<u8>>, what: &str) -> Result<Credentials> {
        let get = |k: &str| {
            map.get(k)
                .and_then(|v| String::from_utf8(v.clone()).ok())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| BackupError::Config(format!("{what} has no {k}")))
        };
        Ok(Credentials {
            access_key_id: get(ACCESS_KEY_ID)?,
            secret_access_key: get(SECRET_ACCESS_KEY)?,
        })
    }

    /// From the process environment (the restore init container gets them from the Secret).
    pub fn from_env() -> Result<Credentials> {
        let map = [ACCESS_KEY_ID, SECRET_ACCESS_KEY]
            .into_iter()
            .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?.into_bytes())))
            .collect();
        Credentials::from_map(&map, "the environment")
    }

    /// From Secret `name` in `namespace`.
    pub async fn from_secret(client: Client, namespace: &str, name: &str) -> Result<Credentials> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let what = format!("secret {namespace}/{name}");
        let secret = api
            .get_opt(name)
            .await?
            .ok_or_else(|| BackupError::Config(format!("{what} not found")))?;
        let mut map: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in secret.data.into_iter().flatten() {
            map.insert(k, v.0);
        }
        for (k, v) in secret.string_data.into_iter().flatten() {
            map.insert(k, v.into_bytes());
        }
        Credentials::from_map(&map, &what)
    }
}

/// The store for `bucket`.
pub fn s3(bucket: &S3Bucket, creds: &Credentials) -> Result<Arc<dyn ObjectStore>> {
    // reqwest is built without a crypto provider (ring, as kube uses, is installed here once;
    // one already installed is kept).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&bucket.bucket)
        .with_region(bucket.region.clone().unwrap_or_else(|| "us-east-1".into()))
        .with_access_key_id(&creds.access_key_id)
        .with_secret_access_key(&creds.secret_access_key)
        .with_virtual_hosted_style_request(false);
    if let Some(e) = &bucket.endpoint {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    Ok(Arc::new(b.build()?))
}

/// The object key of snapshot `snapshot` of `namespace/cluster` in `dest`.
pub fn snapshot_key(dest: &Destination, namespace: &str, cluster: &str, snapshot: &str) -> Path {
    let prefix = dest.prefix.as_deref().unwrap_or("").trim_matches('/');
    let key = format!("{namespace}/{cluster}/{snapshot}.db");
    if prefix.is_empty() {
        Path::from(key)
    } else {
        Path::from(format!("{prefix}/{key}"))
    }
}

/// `s3://<bucket>/<key>`, as status.location shows it.
pub fn location(bucket: &S3Bucket, key: &Path) -> String {
    format!("s3://{}/{}", bucket.bucket, key)
}

/// The key of a `s3://<bucket>/<key>` location in `bucket`.
pub fn key_of_location(bucket: &S3Bucket, location: &str) -> Option<Path> {
    let rest = location.strip_prefix("s3://")?.strip_prefix(bucket.bucket.as_str())?;
    let key = rest.strip_prefix('/')?;
    (!key.is_empty()).then(|| Path::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> S3Bucket {
        S3Bucket {
            bucket: "b".into(),
            endpoint: None,
            region: None,
            credentials_secret: "s".into(),
        }
    }

    #[test]
    fn keys_and_locations() {
        let mut d = Destination { s3: Some(bucket()), pvc: None, prefix: None };
        let b = bucket();
        assert_eq!(snapshot_key(&d, "ns", "c", "c-1").as_ref(), "ns/c/c-1.db");
        d.prefix = Some("/backups/oxcd/".into());
        let k = snapshot_key(&d, "ns", "c", "c-1");
        assert_eq!(k.as_ref(), "backups/oxcd/ns/c/c-1.db");
        let loc = location(&b, &k);
        assert_eq!(loc, "s3://b/backups/oxcd/ns/c/c-1.db");
        assert_eq!(key_of_location(&b, &loc), Some(k));
        assert_eq!(key_of_location(&b, "s3://other/x"), None);
        assert_eq!(key_of_location(&b, "s3://b/"), None);
    }

    #[test]
    fn credentials_need_both_keys_and_hide_the_secret() {
        let mut m = BTreeMap::new();
        m.insert(ACCESS_KEY_ID.to_string(), b"AKIA".to_vec());
        let e = Credentials::from_map(&m, "secret ns/s").unwrap_err().to_string();
        assert_eq!(e, "secret ns/s has no AWS_SECRET_ACCESS_KEY");
        m.insert(SECRET_ACCESS_KEY.to_string(), b"hush\n".to_vec());
        let c = Credentials::from_map(&m, "x").unwrap();
        assert_eq!(c.secret_access_key, "hush");
        assert!(!format!("{c:?}").contains("hush"));
    }
}
