//! A pod's volumes as host directories, and the in-cluster credentials of its ServiceAccount.
//!
//! * `persistentVolumeClaim` — the claim's directory, owned by [`super::claims`]; it outlives
//!   the pod and goes with the claim.
//! * `emptyDir` — a directory in the pod's directory, removed with the pod.
//! * `secret`, `configMap`, `downwardAPI`, `projected` (including `serviceAccountToken`, which is
//!   a real TokenRequest bound to the pod) — files written once when the pod starts (they are not
//!   refreshed while it runs).
//! * `hostPath` — the host path itself.
//!
//! Every pod with a ServiceAccount token also gets `KUBECONFIG` pointing at a kubeconfig with a
//! token for that ServiceAccount, so kube-rs' `Config::infer()` works in its processes.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};

use super::env::{field_value, EnvError, PodFacts, Sources};

/// How processes in pods reach the API server.
#[derive(Clone, Debug)]
pub struct ApiServerAccess {
    /// e.g. `https://127.0.0.1:6443`.
    pub server: String,
    /// The CA that signed the server's certificate, PEM.
    pub ca_pem: Vec<u8>,
}

impl ApiServerAccess {
    /// The first cluster of a kubeconfig file (e.g. the rig's admin kubeconfig).
    pub fn from_kubeconfig(path: &Path) -> Result<Self, VolumeError> {
        let bad = |m: String| VolumeError::Kubeconfig(format!("{}: {m}", path.display()));
        let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
        let cluster = kc
            .clusters
            .first()
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| bad("no cluster".into()))?;
        let server = cluster.server.ok_or_else(|| bad("cluster has no server".into()))?;
        let ca_pem = if let Some(data) = cluster.certificate_authority_data {
            // ByteString's serde form is base64: reuse it rather than adding a base64 crate.
            let bytes: k8s_openapi::ByteString =
                serde_json::from_value(serde_json::Value::String(data))
                    .map_err(|e| bad(format!("certificate-authority-data: {e}")))?;
            bytes.0
        } else if let Some(file) = cluster.certificate_authority {
            fs::read(&file).map_err(|e| bad(format!("{file}: {e}")))?
        } else {
            return Err(bad("cluster has no certificate authority".into()));
        };
        Ok(ApiServerAccess { server, ca_pem })
    }

    /// `KUBERNETES_SERVICE_HOST` and `_PORT` as a pod would see them.
    pub fn service_env(&self) -> Vec<(String, String)> {
        let rest = self.server.split("://").nth(1).unwrap_or(&self.server);
        let hostport = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (hostport.to_string(), "443".to_string()),
        };
        vec![
            ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}")),
        ]
    }
}

/// Why a pod's volumes could not be set up; the pod stays in `ContainerCreating` and is retried.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A Secret/ConfigMap/field could not be read.
    #[error(transparent)]
    Source(#[from] EnvError),
    /// The claim is not (yet) bound to a directory.
    #[error("persistentvolumeclaim {0:?} is not bound yet")]
    ClaimNotReady(String),
    /// A kind of volume this kubelet does not offer.
    #[error("volume {name:?}: {kind} volumes are not supported by the process kubelet")]
    Unsupported { name: String, kind: &'static str },
    /// A path in `items` tries to leave the volume.
    #[error("volume {name:?}: invalid item path {path:?}")]
    BadPath { name: String, path: String },
    /// TokenRequest failed.
    #[error("requesting a token for serviceaccount {sa:?}: {source}")]
    Token { sa: String, source: kube::Error },
    /// Writing files.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The kubeconfig for pods could not be read.
    #[error("kubeconfig {0}")]
    Kubeconfig(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io { path: path.to_path_buf(), source }
}

/// What `prepare` needs from the kubelet.
pub struct VolumeContext<'a> {
    /// For Secrets, ConfigMaps and tokens.
    pub client: Client,
    /// The pod's directory (`emptyDir`s and written volumes live under it).
    pub pod_dir: &'a Path,
    /// A claim name → its directory, if bound.
    pub claim_dir: &'a (dyn Fn(&str) -> Option<PathBuf> + Send + Sync),
    /// How to reach the API server (for the pod's kubeconfig); `None`: no kubeconfig.
    pub api_server: Option<&'a ApiServerAccess>,
    /// Downward-API facts.
    pub facts: &'a PodFacts,
}

/// A pod's volumes, by name, and its kubeconfig if it has one.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    /// Volume name → host path.
    pub dirs: BTreeMap<String, PathBuf>,
    /// The ServiceAccount kubeconfig for `KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
}

/// Sets up every volume of `pod`.
pub async fn prepare(
    cx: &VolumeContext<'_>,
    pod: &Pod,
    sources: &mut Sources,
) -> Result<PodVolumes, VolumeError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let vol_root = cx.pod_dir.join("volumes");
    let mut out = PodVolumes::default();
    for v in spec.volumes.iter().flatten() {
        let dir = vol_root.join(&v.name);
        let path = if let Some(c) = &v.persistent_volume_claim {
            (cx.claim_dir)(&c.claim_name)
                .ok_or_else(|| VolumeError::ClaimNotReady(c.claim_name.clone()))?
        } else if v.empty_dir.is_some() {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            dir
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
                fs::create_dir_all(&p).map_err(io_err(&p))?;
            }
            p
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let data = sources.secret_data(&name).await?;
            let files = select(&v.name, data, s.items.as_deref(), s.optional, "Secret", &name)?;
            write_files(&dir, &files, s.default_mode.unwrap_or(0o644))?;
            dir
        } else if let Some(c) = &v.config_map {
            let data = sources.config_map_data(&c.name).await?;
            let files =
                select(&v.name, data, c.items.as_deref(), c.optional, "ConfigMap", &c.name)?;
            write_files(&dir, &files, c.default_mode.unwrap_or(0o644))?;
            dir
        } else if let Some(d) = &v.downward_api {
            let files = downward(&v.name, pod, d.items.as_deref().unwrap_or_default(), cx.facts)?;
            write_files(&dir, &files, d.default_mode.unwrap_or(0o644))?;
            dir
        } else if let Some(p) = &v.projected {
            let mut files = Vec::new();
            for src in p.sources.iter().flatten() {
                if let Some(s) = &src.secret {
                    let data = sources.secret_data(&s.name).await?;
                    files.extend(select(
                        &v.name,
                        data,
                        s.items.as_deref(),
                        s.optional,
                        "Secret",
                        &s.name,
                    )?);
                }
                if let Some(c) = &src.config_map {
                    let data = sources.config_map_data(&c.name).await?;
                    files.extend(select(
                        &v.name,
                        data,
                        c.items.as_deref(),
                        c.optional,
                        "ConfigMap",
                        &c.name,
                    )?);
                }
                if let Some(d) = &src.downward_api {
                    files.extend(downward(
                        &v.name,
                        pod,
                        d.items.as_deref().unwrap_or_default(),
                        cx.facts,
                    )?);
                }
                if let Some(t) = &src.service_account_token {
                    let audiences = t.audience.clone().into_iter().collect();
                    let token = request_token(cx, pod, audiences, t.expiration_seconds).await?;
                    files.push(checked(&v.name, &t.path, token.into_bytes(), None)?);
                }
                if src.cluster_trust_bundle.is_some() || src.pod_certificate.is_some() {
                    return Err(VolumeError::Unsupported {
                        name: v.name.clone(),
                        kind: "clusterTrustBundle/podCertificate",
                    });
                }
            }
            write_files(&dir, &files, p.default_mode.unwrap_or(0o644))?;
            dir
        } else {
            return Err(VolumeError::Unsupported { name: v.name.clone(), kind: volume_kind(v) });
        };
        out.dirs.insert(v.name.clone(), path);
    }
    if let Some(api) = cx.api_server {
        if spec.automount_service_account_token != Some(false) {
            let token = request_token(cx, pod, vec![], Some(86_400)).await?;
            out.kubeconfig = Some(write_kubeconfig(cx.pod_dir, api, pod, &token)?);
        }
    }
    Ok(out)
}

fn volume_kind(v: &k8s_openapi::api::core::v1::Volume) -> &'static str {
    let j = serde_json::to_value(v).unwrap_or_default();
    let known = ["nfs", "iscsi", "csi", "ephemeral", "image", "gitRepo", "cephfs", "fc", "rbd"];
    known.into_iter().find(|k| j.get(*k).is_some()).unwrap_or("this kind of")
}

/// A file to write: relative path, content, mode.
type File = (PathBuf, Vec<u8>, Option<i32>);

/// The files of a Secret/ConfigMap volume: every key, or the listed `items`.
fn select(
    volume: &str,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    kind: &'static str,
    name: &str,
) -> Result<Vec<File>, VolumeError> {
    let Some(data) = data else {
        if optional.unwrap_or(false) {
            return Ok(vec![]);
        }
        return Err(EnvError::Missing { kind, name: name.into(), key: String::new() }.into());
    };
    match items {
        None => data.into_iter().map(|(k, v)| checked(volume, &k, v, None)).collect(),
        Some(items) => items
            .iter()
            .map(|it| match data.get(&it.key) {
                Some(v) => checked(volume, &it.path, v.clone(), it.mode),
                None => {
                    Err(EnvError::Missing { kind, name: name.into(), key: it.key.clone() }.into())
                }
            })
            .collect(),
    }
}

fn downward(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    facts: &PodFacts,
) -> Result<Vec<File>, VolumeError> {
    items
        .iter()
        .map(|it| {
            let value = match (&it.field_ref, &it.resource_field_ref) {
                (Some(f), _) => field_value(pod, &f.field_path, facts)?,
                (None, Some(r)) => return Err(EnvError::ResourceField(r.resource.clone()).into()),
                (None, None) => String::new(),
            };
            checked(volume, &it.path, value.into_bytes(), it.mode)
        })
        .collect()
}

/// A relative item path that stays inside its volume.
fn checked(
    volume: &str,
    path: &str,
    content: Vec<u8>,
    mode: Option<i32>,
) -> Result<File, VolumeError> {
    let p = PathBuf::from(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(VolumeError::BadPath { name: volume.into(), path: path.into() });
    }
    Ok((p, content, mode))
}

fn write_files(dir: &Path, files: &[File], default_mode: i32) -> Result<(), VolumeError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    for (rel, content, mode) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::write(&path, content).map_err(io_err(&path))?;
        let mode = mode.unwrap_or(default_mode) as u32 & 0o7777;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_err(&path))?;
    }
    Ok(())
}

/// A token for the pod's ServiceAccount, bound to the pod (TokenRequest).
async fn request_token(
    cx: &VolumeContext<'_>,
    pod: &Pod,
    audiences: Vec<String>,
    expiration: Option<i64>,
) -> Result<String, VolumeError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(audiences),
            expiration_seconds: Some(expiration.unwrap_or(3600).max(600)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(cx.client.clone(), &ns);
    let resp: TokenRequest = api
        .create_subresource("token", &sa, &PostParams::default(), &req)
        .await
        .map_err(|source| VolumeError::Token { sa: sa.clone(), source })?;
    Ok(resp.status.and_then(|s| s.token).unwrap_or_default())
}

/// Writes `<pod_dir>/serviceaccount/{ca.crt,kubeconfig}`; returns the kubeconfig's path.
fn write_kubeconfig(
    pod_dir: &Path,
    api: &ApiServerAccess,
    pod: &Pod,
    token: &str,
) -> Result<PathBuf, VolumeError> {
    let dir = pod_dir.join("serviceaccount");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let ca = dir.join("ca.crt");
    fs::write(&ca, &api.ca_pem).map_err(io_err(&ca))?;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    // JSON is YAML: every kubeconfig reader accepts it.
    let kc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rig", "cluster": {"server": api.server, "certificate-authority": ca}}],
        "users": [{"name": "serviceaccount", "user": {"token": token}}],
        "contexts": [{"name": "rig", "context": {"cluster": "rig", "user": "serviceaccount", "namespace": ns}}],
        "current-context": "rig",
    });
    let path = dir.join("kubeconfig");
    fs::write(&path, serde_json::to_vec_pretty(&kc).unwrap_or_default()).map_err(io_err(&path))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(io_err(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_select_and_stay_inside() {
        let data: BTreeMap<String, Vec<u8>> =
            [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())].into();
        let all = select("v", Some(data.clone()), None, None, "Secret", "s").unwrap();
        assert_eq!(all.len(), 2);
        let items =
            vec![KeyToPath { key: "b".into(), path: "dir/b.txt".into(), mode: Some(0o600) }];
        let one = select("v", Some(data.clone()), Some(&items), None, "Secret", "s").unwrap();
        assert_eq!(one, vec![(PathBuf::from("dir/b.txt"), b"2".to_vec(), Some(0o600))]);
        let escape = vec![KeyToPath { key: "a".into(), path: "../x".into(), mode: None }];
        assert!(matches!(
            select("v", Some(data.clone()), Some(&escape), None, "Secret", "s"),
            Err(VolumeError::BadPath { .. })
        ));
        let missing = vec![KeyToPath { key: "zz".into(), path: "z".into(), mode: None }];
        assert!(select("v", Some(data), Some(&missing), None, "Secret", "s").is_err());
        assert!(select("v", None, None, Some(true), "Secret", "s").unwrap().is_empty());
        assert!(select("v", None, None, None, "Secret", "s").is_err());
    }

    #[test]
    fn written_files_have_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            (PathBuf::from("x/y"), b"v".to_vec(), None),
            (PathBuf::from("z"), b"w".to_vec(), Some(0o400)),
        ];
        write_files(dir.path(), &files, 0o640).unwrap();
        let mode = |p: &str| fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("x/y"), 0o640);
        assert_eq!(mode("z"), 0o400);
        assert_eq!(fs::read(dir.path().join("x/y")).unwrap(), b"v");
    }

    #[test]
    fn service_env_from_server_url() {
        let a = ApiServerAccess { server: "https://127.0.0.1:36443".into(), ca_pem: vec![] };
        let env = a.service_env();
        assert_eq!(env[0], ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()));
        assert_eq!(env[1], ("KUBERNETES_SERVICE_PORT".into(), "36443".into()));
    }
}
