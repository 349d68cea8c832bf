//! Bootstrapping a new cluster from a snapshot file.
//!
//! The operator founds a cluster with member 0 alone and adds the others learner-first, so only
//! the founding member restores: its pod (and only a pod of the bootstrap template) gets an init
//! container running `oxcd-operator restore-member`, which downloads the file (or copies it
//! from the claim mounted read-only at `/backup`), checks its SHA-256, and runs `oxcd snapshot restore` with exactly the member's own bootstrap flags. The
//! members added later receive the data through raft. A restarted pod whose data dir exists
//! restores nothing, so the init container is safe to run again.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector, Volume, VolumeMount,
};

use super::api::{phase, EtcdSnapshot, S3Bucket, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use super::{store, stream, volume, BackupError, Result};
use crate::crd::EtcdCluster;
use crate::resources::{args, Bootstrap, DATA_DIR, VOLUME_NAME};

/// The member flags the restore must agree with (the data dir, name and bootstrap identity).
const FLAGS: &[&str] = &[
    "--data-dir",
    "--name",
    "--initial-cluster",
    "--initial-cluster-token",
    "--initial-advertise-peer-urls",
];

/// The init containers of a member pod: the restore, for the bootstrap template of a cluster
/// with `spec.restore`; none otherwise.
pub fn init_containers(cluster: &EtcdCluster, bootstrap: Bootstrap) -> Option<Vec<Container>> {
    let restore = cluster.spec.restore.as_ref()?;
    if bootstrap != Bootstrap::New {
        return None;
    }
    let member_args = args(cluster, Bootstrap::New);
    let mut a = vec!["restore-member".to_string()];
    for flag in FLAGS {
        let prefix = format!("{flag}=");
        a.extend(member_args.iter().filter(|x| x.starts_with(&prefix)).cloned());
    }
    // Unresolved (an EtcdSnapshot not yet found): no bucket nor key, so the init container
    // fails and retries rather than founding an empty cluster.
    let bucket = restore.s3.clone().unwrap_or_default();
    match (&restore.s3, &restore.pvc, &restore.key) {
        (Some(_), _, Some(key)) => {
            a.push(format!("--s3-bucket={}", bucket.bucket));
            a.push(format!("--s3-key={key}"));
        }
        (None, Some(_), Some(key)) => a.push(format!("--file={}", volume::mounted(key))),
        _ => {}
    }
    if let Some(e) = &bucket.endpoint {
        a.push(format!("--s3-endpoint={e}"));
    }
    if let Some(r) = &bucket.region {
        a.push(format!("--s3-region={r}"));
    }
    if let Some(h) = &restore.sha256 {
        a.push(format!("--sha256={h}"));
    }
    let secret_env = |name: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: bucket.credentials_secret.clone(),
                key: name.into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Some(vec![Container {
        name: "restore".into(),
        image: Some(cluster.spec.image()),
        command: Some(vec!["oxcd-operator".into()]),
        args: Some(a),
        env: Some(
            vec![EnvVar {
                name: "POD_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]
            .into_iter()
            .chain(restore.s3.is_some().then(|| secret_env(ACCESS_KEY_ID)))
            .chain(restore.s3.is_some().then(|| secret_env(SECRET_ACCESS_KEY)))
            .collect(),
        ),
        volume_mounts: Some(
            [VolumeMount {
                name: VOLUME_NAME.into(),
                mount_path: DATA_DIR.into(),
                ..Default::default()
            }]
            .into_iter()
            .chain(restore.pvc.is_some().then(|| VolumeMount {
                name: volume::VOLUME.into(),
                mount_path: volume::MOUNT.into(),
                read_only: Some(true),
                ..Default::default()
            }))
            .collect(),
        ),
        ..Default::default()
    }])
}

/// The pod volumes the restore needs: the claim holding the file, for the bootstrap template
/// of a cluster restoring from a claim; none otherwise.
pub fn volumes(cluster: &EtcdCluster, bootstrap: Bootstrap) -> Option<Vec<Volume>> {
    let pvc = cluster.spec.restore.as_ref()?.pvc.as_ref()?;
    (bootstrap == Bootstrap::New).then(|| vec![volume::claim_volume(pvc, true)])
}

/// Fills `spec.restore`'s bucket or claim, key and sha256 from the `EtcdSnapshot` it names, which must
/// have succeeded; a restore naming a file is left as it is. Called before the founding
/// member's pod template is built.
pub async fn resolve(client: &kube::Client, cluster: &mut EtcdCluster) -> Result<()> {
    use kube::ResourceExt;
    let ns = cluster.namespace().unwrap_or_default();
    let Some(r) = cluster.spec.restore.as_mut() else { return Ok(()) };
    let Some(name) = r.snapshot.clone() else { return Ok(()) };
    let snaps: kube::Api<EtcdSnapshot> = kube::Api::namespaced(client.clone(), &ns);
    let snap = snaps
        .get_opt(&name)
        .await?
        .ok_or_else(|| BackupError::Config(format!("EtcdSnapshot {ns}/{name} not found")))?;
    let status = snap.status.clone().unwrap_or_default();
    if status.phase.as_deref() != Some(phase::SUCCEEDED) {
        return Err(BackupError::Config(format!(
            "EtcdSnapshot {ns}/{name} has not succeeded (phase {})",
            status.phase.as_deref().unwrap_or("none")
        )));
    }
    let dest = &snap.spec.destination;
    let location = status.location.as_deref().unwrap_or_default();
    let key = match (&dest.s3, &dest.pvc) {
        (Some(s3), _) => store::key_of_location(s3, location).map(|k| k.to_string()),
        (None, Some(pvc)) => volume::path_of_location(pvc, location),
        (None, None) => None,
    };
    let key = key.ok_or_else(|| {
        BackupError::Config(format!("EtcdSnapshot {ns}/{name} has no location {location:?}"))
    })?;
    r.s3 = dest.s3.clone();
    r.pvc = dest.pvc.clone();
    r.key = Some(key);
    if r.sha256.is_none() {
        r.sha256 = status.sha256;
    }
    Ok(())
}

/// What `oxcd-operator restore-member` is asked to do.
#[derive(Debug, Clone)]
pub struct MemberRestore {
    /// The member's data dir (must not exist yet, else nothing is done).
    pub data_dir: PathBuf,
    /// `--name`, `--initial-cluster`, `--initial-cluster-token`,
    /// `--initial-advertise-peer-urls` for `oxcd snapshot restore`.
    pub name: String,
    /// See `name`.
    pub initial_cluster: String,
    /// See `name`.
    pub initial_cluster_token: String,
    /// See `name`.
    pub initial_advertise_peer_urls: String,
    /// Where the file is.
    pub source: Source,
    /// Its expected SHA-256 (hex).
    pub sha256: Option<String>,
    /// The `oxcd` binary (default: beside this executable, else `oxcd` on `PATH`).
    pub oxcd: Option<PathBuf>,
}

/// Where a restored file comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An object in a bucket (credentials from the environment).
    S3 {
        /// The bucket.
        bucket: S3Bucket,
        /// The object's key.
        key: String,
    },
    /// A file (on the claim the init container mounts).
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::S3 { bucket, key } => write!(f, "s3://{}/{key}", bucket.bucket),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What a member restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The data dir existed: the member already has its data.
    AlreadyPresent,
    /// The file (this many bytes, this SHA-256) was restored into the data dir.
    Restored {
        /// Bytes downloaded.
        size: u64,
        /// Their SHA-256.
        sha256: String,
    },
}

/// `oxcd` beside the running executable (both are in the image's `/usr/local/bin`), else the
/// name for a `PATH` lookup.
fn oxcd_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("oxcd")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("oxcd"))
}

fn exists_non_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false)
}

/// Fetches the file (from a bucket, credentials from the environment, or from a path) and
/// restores it into the data dir.
pub async fn restore_member(r: &MemberRestore) -> Result<Restored> {
    if exists_non_empty(&r.data_dir) {
        return Ok(Restored::AlreadyPresent);
    }
    let parent = r.data_dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|source| BackupError::Io { path: parent.display().to_string(), source })?;
    let file = parent.join("restore.db");
    let (size, sha256) = match &r.source {
        Source::S3 { bucket, key } => {
            let creds = store::Credentials::from_env()?;
            let s3 = store::s3(bucket, &creds)?;
            let key = object_store::path::Path::from(key.as_str());
            stream::download(s3.as_ref(), &key, &file, r.sha256.as_deref()).await?
        }
        Source::File(from) => stream::copy_checked(from, &file, r.sha256.as_deref())?,
    };
    let oxcd = r.oxcd.clone().unwrap_or_else(oxcd_binary);
    let out = tokio::process::Command::new(&oxcd)
        .arg("snapshot")
        .arg("restore")
        .arg(&file)
        .arg(format!("--data-dir={}", r.data_dir.display()))
        .arg(format!("--name={}", r.name))
        .arg(format!("--initial-cluster={}", r.initial_cluster))
        .arg(format!("--initial-cluster-token={}", r.initial_cluster_token))
        .arg(format!("--initial-advertise-peer-urls={}", r.initial_advertise_peer_urls))
        .output()
        .await
        .map_err(|source| BackupError::Io { path: oxcd.display().to_string(), source })?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(BackupError::Config(format!(
            "oxcd snapshot restore failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(Restored::Restored { size, sha256 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::api::RestoreSpec;
    use crate::resources::statefulset;

    fn restoring() -> EtcdCluster {
        let mut c = crate::resources::tests::demo();
        c.spec.restore = Some(RestoreSpec {
            snapshot: None,
            s3: Some(S3Bucket {
                bucket: "backups".into(),
                endpoint: Some("http://s3.ns.svc:9000".into()),
                region: None,
                credentials_secret: "s3-creds".into(),
            }),
            pvc: None,
            key: Some("ns/old/old-1.db".into()),
            sha256: Some("ab".repeat(32)),
        });
        c
    }

    fn init(c: &EtcdCluster, b: Bootstrap) -> Option<Vec<Container>> {
        let sts = statefulset(c, 1, b);
        sts.spec?.template.spec?.init_containers
    }

    #[test]
    fn only_the_bootstrap_template_of_a_restoring_cluster_restores() {
        let c = restoring();
        let inits = init(&c, Bootstrap::New).expect("an init container");
        let a = inits[0].args.clone().unwrap();
        assert_eq!(a[0], "restore-member");
        assert!(a.contains(&"--name=$(POD_NAME)".to_string()), "{a:?}");
        assert!(a.contains(&"--data-dir=/var/lib/oxcd/data".to_string()), "{a:?}");
        assert!(a.contains(&"--initial-cluster=demo-0=http://demo-0.demo.ns.svc:2380".into()));
        assert!(a.contains(&"--s3-key=ns/old/old-1.db".to_string()));
        assert!(a.contains(&format!("--sha256={}", "ab".repeat(32))));
        assert_eq!(inits[0].command, Some(vec!["oxcd-operator".to_string()]));
        assert!(init(&c, Bootstrap::Existing).is_none());
        assert!(init(&crate::resources::tests::demo(), Bootstrap::New).is_none());
        assert!(super::volumes(&c, Bootstrap::New).is_none(), "no claim for an S3 restore");
        let env: Vec<String> = inits[0].env.iter().flatten().map(|e| e.name.clone()).collect();
        assert!(env.contains(&ACCESS_KEY_ID.to_string()), "{env:?}");
        // The restore is bootstrap-only: it does not change the hash that restarts members.
        assert_eq!(
            crate::resources::template_hash(&c, Bootstrap::New),
            crate::resources::template_hash(&crate::resources::tests::demo(), Bootstrap::New)
        );
    }

    #[test]
    fn a_restore_from_a_claim_mounts_it_read_only_in_the_founding_pod_only() {
        let mut c = restoring();
        if let Some(r) = c.spec.restore.as_mut() {
            r.s3 = None;
            r.pvc = Some(crate::backup::api::PvcVolume { claim_name: "backups".into() });
        }
        let inits = init(&c, Bootstrap::New).expect("an init container");
        let a = inits[0].args.clone().unwrap();
        assert!(a.contains(&"--file=/backup/ns/old/old-1.db".to_string()), "{a:?}");
        assert!(!a.iter().any(|x| x.starts_with("--s3-")), "{a:?}");
        let env: Vec<String> = inits[0].env.iter().flatten().map(|e| e.name.clone()).collect();
        assert_eq!(env, vec!["POD_NAME"], "no S3 credentials");
        let mount = inits[0].volume_mounts.iter().flatten().find(|m| m.name == "backup").cloned();
        assert_eq!(
            mount.map(|m| (m.mount_path, m.read_only)),
            Some(("/backup".into(), Some(true)))
        );
        let pod = statefulset(&c, 1, Bootstrap::New).spec.unwrap().template.spec.unwrap();
        let vols = pod.volumes.expect("the claim as a volume");
        let claim = vols[0].persistent_volume_claim.clone().expect("a claim");
        assert_eq!((claim.claim_name.as_str(), claim.read_only), ("backups", Some(true)));
        let later = statefulset(&c, 3, Bootstrap::Existing).spec.unwrap().template.spec.unwrap();
        assert!(later.volumes.is_none() && later.init_containers.is_none());
    }
}
