//! kubeconfig files: how kubectl, kube-rs and kube-controller-manager find and authenticate to
//! the rig's apiserver. They refer to the PEM files by path (no inline data), so a person can
//! read them and reuse the certificates.

use std::path::{Path, PathBuf};

use crate::certs::CertFiles;
use crate::error::{Error, Result};

/// Writes a kubeconfig with one cluster (`server`, trusting `ca`), one user authenticated by
/// the client certificate `client`, and one current context, all named `name`.
pub fn write(path: &Path, name: &str, server: &str, ca: &Path, client: &CertFiles) -> Result<()> {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": { "server": server, "certificate-authority": ca },
        }],
        "users": [{
            "name": name,
            "user": { "client-certificate": client.cert, "client-key": client.key },
        }],
        "contexts": [{
            "name": name,
            "context": { "cluster": name, "user": name, "namespace": "default" },
        }],
        "current-context": name,
    });
    let text = serde_yaml::to_string(&doc).map_err(|e| Error::Kubeconfig {
        path: path.to_path_buf(),
        message: format!("cannot serialize: {e}"),
    })?;
    std::fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// A kube-rs client from a kubeconfig file written by [`write`].
pub async fn client(path: &Path) -> Result<kube::Client> {
    let err = |message: String| Error::Kubeconfig { path: PathBuf::from(path), message };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(Error::Kube)
}
