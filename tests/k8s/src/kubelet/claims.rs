//! PersistentVolumeClaims as directories: binding and garbage collection.
//!
//! A pending claim gets a directory `<root>/claims/<ns>_<name>_<uid>` and a PersistentVolume
//! `pvc-<uid>` (hostPath on that directory, reclaim policy Retain, pre-bound to the claim); the
//! claim is then bound (`spec.volumeName`, the bind annotations and `status.phase: Bound`, as
//! kube-controller-manager's binder would leave it), so `kubectl get pvc` shows `Bound`. The
//! directory outlives every pod using the claim and is removed, with the volume, once the claim
//! is gone from the API. A bound claim whose request grows (its StorageClass allows expansion,
//! which the apiserver's admission checks) is resized at once: the volume's capacity and the
//! claim's `status.capacity` take the new size, as the external resizer and the kubelet's
//! filesystem expansion would leave them (a directory has no size to grow).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

/// The label on the volumes this kubelet created (value: the node name).
pub const OWNER_LABEL: &str = "oxcd.io/process-kubelet";

/// The claim directories of one kubelet.
#[derive(Clone, Debug)]
pub struct Claims {
    root: PathBuf,
}

impl Claims {
    /// Claims kept under `root`.
    pub fn new(root: PathBuf) -> Self {
        Claims { root }
    }

    /// The directory of `pvc`.
    pub fn dir(&self, pvc: &PersistentVolumeClaim) -> PathBuf {
        let ns = pvc.namespace().unwrap_or_default();
        let uid = pvc.uid().unwrap_or_default();
        self.root.join(format!("{ns}_{}_{uid}", pvc.name_any()))
    }

    /// The name of the volume this kubelet makes for `pvc`.
    pub fn volume_name(pvc: &PersistentVolumeClaim) -> String {
        format!("pvc-{}", pvc.uid().unwrap_or_default())
    }

    /// The directory a pod mounts for `pvc`, once the claim is bound to this kubelet's volume.
    pub fn mount_dir(&self, pvc: &PersistentVolumeClaim) -> Option<PathBuf> {
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let ours =
            pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) == Some(Self::volume_name(pvc));
        let dir = self.dir(pvc);
        (bound && ours && dir.is_dir()).then_some(dir)
    }

    /// Whether `pvc` waits for a volume.
    pub fn needs_binding(pvc: &PersistentVolumeClaim) -> bool {
        pvc.metadata.deletion_timestamp.is_none()
            && pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()).unwrap_or("").is_empty()
    }

    /// Creates the directory and the volume and binds `pvc` to them.
    pub async fn bind(
        &self,
        client: &Client,
        node: &str,
        pvc: &PersistentVolumeClaim,
    ) -> Result<(), kube::Error> {
        let ns = pvc.namespace().unwrap_or_default();
        let name = pvc.name_any();
        let dir = self.dir(pvc);
        fs::create_dir_all(&dir).map_err(|e| kube::Error::Service(Box::new(e)))?;
        let spec = pvc.spec.clone().unwrap_or_default();
        let storage = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage").cloned())
            .unwrap_or(Quantity("1Gi".into()));
        let access_modes = spec
            .access_modes
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or(vec!["ReadWriteOnce".into()]);
        let pv_name = Self::volume_name(pvc);
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": {OWNER_LABEL: node}},
            "spec": {
                "capacity": {"storage": storage},
                "accessModes": access_modes,
                "hostPath": {"path": dir, "type": "DirectoryOrCreate"},
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
                "volumeMode": spec.volume_mode.clone().unwrap_or("Filesystem".into()),
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                             "name": name, "uid": pvc.uid()},
            }
        }))
        .map_err(kube::Error::SerdeError)?;
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        match pvs.create(&PostParams::default(), &pv).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
        let pp = PatchParams::default();
        pvs.patch_status(
            &pv_name,
            &pp,
            &Patch::Merge(serde_json::json!({"status": {"phase": "Bound"}})),
        )
        .await?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let bind = serde_json::json!({
            "metadata": {
                "uid": pvc.uid(),
                "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                "pv.kubernetes.io/bound-by-controller": "yes"}
            },
            "spec": {"volumeName": pv_name},
        });
        claims.patch(&name, &pp, &Patch::Merge(bind)).await?;
        let status = serde_json::json!({
            "metadata": {"uid": pvc.uid()},
            "status": {"phase": "Bound", "accessModes": access_modes, "capacity": {"storage": storage}},
        });
        claims.patch_status(&name, &pp, &Patch::Merge(status)).await?;
        Ok(())
    }

    /// The size `pvc` requests when it is one of this kubelet's bound claims and its capacity
    /// differs (its request grew): what [`Claims::resize`] gives it.
    pub fn needs_resize(pvc: &PersistentVolumeClaim) -> Option<Quantity> {
        let spec = pvc.spec.as_ref()?;
        if pvc.metadata.deletion_timestamp.is_some()
            || spec.volume_name.as_deref() != Some(Self::volume_name(pvc).as_str())
        {
            return None;
        }
        let status = pvc.status.as_ref()?;
        if status.phase.as_deref() != Some("Bound") {
            return None;
        }
        let requested = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?;
        let capacity = status.capacity.as_ref().and_then(|c| c.get("storage"));
        (capacity != Some(requested)).then(|| requested.clone())
    }

    /// Gives `pvc`'s volume and the claim's status the capacity `size`.
    pub async fn resize(
        &self,
        client: &Client,
        pvc: &PersistentVolumeClaim,
        size: &Quantity,
    ) -> Result<(), kube::Error> {
        let pp = PatchParams::default();
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        let capacity = serde_json::json!({"spec": {"capacity": {"storage": size}}});
        pvs.patch(&Self::volume_name(pvc), &pp, &Patch::Merge(capacity)).await?;
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(client.clone(), &pvc.namespace().unwrap_or_default());
        let status = serde_json::json!({
            "metadata": {"uid": pvc.uid()},
            "status": {"capacity": {"storage": size}},
        });
        claims.patch_status(&pvc.name_any(), &pp, &Patch::Merge(status)).await?;
        Ok(())
    }

    /// Removes the directories and volumes of claims whose uid is not in `live`.
    pub async fn collect(&self, client: &Client, live: &BTreeSet<String>) {
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((_, uid)) = name.rsplit_once('_') else { continue };
            if live.contains(uid) {
                continue;
            }
            let _ = fs::remove_dir_all(e.path());
            let pvs: Api<PersistentVolume> = Api::all(client.clone());
            let _ = pvs.delete(&format!("pvc-{uid}"), &DeleteParams::default()).await;
        }
    }

    /// Fault: the claim's data is lost (its directory is replaced by an empty one).
    pub fn lose(&self, pvc: &PersistentVolumeClaim) -> io::Result<()> {
        let dir = self.dir(pvc);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir_all(&dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(volume: &str, requested: &str, capacity: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "data-x-0", "namespace": "default", "uid": "u1"},
            "spec": {"volumeName": volume, "resources": {"requests": {"storage": requested}}},
            "status": {"phase": "Bound", "capacity": capacity.map(|c| serde_json::json!({"storage": c}))},
        }))
        .expect("a claim")
    }

    #[test]
    fn a_grown_request_of_an_own_bound_claim_is_resized() {
        assert_eq!(
            Claims::needs_resize(&claim("pvc-u1", "2Gi", Some("1Gi"))),
            Some(Quantity("2Gi".into()))
        );
        assert_eq!(Claims::needs_resize(&claim("pvc-u1", "1Gi", Some("1Gi"))), None);
        assert_eq!(Claims::needs_resize(&claim("pv-other", "2Gi", Some("1Gi"))), None, "not ours");
        let mut pending = claim("pvc-u1", "2Gi", None);
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        assert_eq!(Claims::needs_resize(&pending), None);
    }
}
