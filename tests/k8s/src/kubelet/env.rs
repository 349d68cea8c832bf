//! A container's environment: `envFrom`, `env` with `$(VAR)` references, and the `valueFrom`
//! sources (downward-API fields, Secret and ConfigMap keys), plus what every container gets
//! (`HOSTNAME`, `PATH`, `HOME`, `KUBERNETES_SERVICE_*`, the pod's `KUBECONFIG`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

use super::expand::expand_with;

/// What a container's environment and downward-API files can refer to besides the Pod object.
#[derive(Clone, Debug, Default)]
pub struct PodFacts {
    /// `status.podIP`.
    pub pod_ip: String,
    /// `status.hostIP`.
    pub host_ip: String,
}

/// Why a value could not be resolved; the container waits (`CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A field path the downward API does not offer (or this kubelet does not).
    #[error("unsupported fieldRef fieldPath {0:?}")]
    FieldPath(String),
    /// `resourceFieldRef` is not implemented by the process kubelet.
    #[error("resourceFieldRef {0:?} is not supported by the process kubelet")]
    ResourceField(String),
    /// A referenced Secret or ConfigMap (or its key) is missing and not optional.
    #[error("{kind} {name:?} (key {key:?}) not found")]
    Missing { kind: &'static str, name: String, key: String },
    /// The API server could not be asked.
    #[error("reading {kind} {name:?}: {source}")]
    Api { kind: &'static str, name: String, source: kube::Error },
}

/// The value of a downward-API `fieldPath` for `pod`.
pub fn field_value(pod: &Pod, path: &str, facts: &PodFacts) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_entry = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()
    };
    let map_all = |map: &Option<BTreeMap<String, String>>| {
        map.as_ref()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v:?}\n")).collect::<String>())
            .unwrap_or_default()
    };
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(map_entry(&meta.labels, key));
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(map_entry(&meta.annotations, key));
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => map_all(&meta.labels),
        "metadata.annotations" => map_all(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => {
            spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default()
        }
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        other => return Err(EnvError::FieldPath(other.into())),
    })
}

/// `metadata.labels['key']` → `key`.
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
    rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\''))
}

/// Reads Secrets and ConfigMaps of one namespace, each at most once per pod start.
pub struct Sources {
    client: Client,
    namespace: String,
    secrets: BTreeMap<String, Option<Secret>>,
    config_maps: BTreeMap<String, Option<ConfigMap>>,
}

impl Sources {
    /// A reader for `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Sources {
            client,
            namespace: namespace.into(),
            secrets: BTreeMap::new(),
            config_maps: BTreeMap::new(),
        }
    }

    /// The Secret `name`, or `None` if it does not exist.
    pub async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let s = api.get_opt(name).await.map_err(|source| EnvError::Api {
                kind: "Secret",
                name: name.into(),
                source,
            })?;
            self.secrets.insert(name.into(), s);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }

    /// The ConfigMap `name`, or `None` if it does not exist.
    pub async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let c = api.get_opt(name).await.map_err(|source| EnvError::Api {
                kind: "ConfigMap",
                name: name.into(),
                source,
            })?;
            self.config_maps.insert(name.into(), c);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    /// All keys of a Secret as bytes (`data`, then `stringData` which the API folds in).
    pub async fn secret_data(
        &mut self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, EnvError> {
        Ok(self.secret(name).await?.map(|s| {
            let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in s.data.iter().flatten() {
                out.insert(k.clone(), v.0.clone());
            }
            for (k, v) in s.string_data.iter().flatten() {
                out.insert(k.clone(), v.clone().into_bytes());
            }
            out
        }))
    }

    /// All keys of a ConfigMap as bytes (`data` and `binaryData`).
    pub async fn config_map_data(
        &mut self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, EnvError> {
        Ok(self.config_map(name).await?.map(|c| {
            let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in c.data.iter().flatten() {
                out.insert(k.clone(), v.clone().into_bytes());
            }
            for (k, v) in c.binary_data.iter().flatten() {
                out.insert(k.clone(), v.0.clone());
            }
            out
        }))
    }
}

/// The container's environment in order: the kubelet's base variables, then `envFrom`, then
/// `env` (each value expanded against everything before it).
pub async fn container_env(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
    base: Vec<(String, String)>,
    sources: &mut Sources,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut vars = base;
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, kind, name) = if let Some(r) = &from.config_map_ref {
            let d = sources.config_map_data(&r.name).await?;
            (d, r.optional.unwrap_or(false), "ConfigMap", r.name.clone())
        } else if let Some(r) = &from.secret_ref {
            let d = sources.secret_data(&r.name).await?;
            (d, r.optional.unwrap_or(false), "Secret", r.name.clone())
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    vars.push((format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned()));
                }
            }
            None if optional => {}
            None => return Err(EnvError::Missing { kind, name, key: String::new() }),
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            Some(expand_with(v, &vars))
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_value(pod, &f.field_path, facts)?)
            } else if let Some(r) = &from.resource_field_ref {
                return Err(EnvError::ResourceField(r.resource.clone()));
            } else if let Some(k) = &from.secret_key_ref {
                let data = sources.secret_data(&k.name).await?;
                match data.and_then(|d| d.get(&k.key).cloned()) {
                    Some(v) => Some(String::from_utf8_lossy(&v).into_owned()),
                    None if k.optional.unwrap_or(false) => None,
                    None => {
                        let (name, key) = (k.name.clone(), k.key.clone());
                        return Err(EnvError::Missing { kind: "Secret", name, key });
                    }
                }
            } else if let Some(k) = &from.config_map_key_ref {
                let data = sources.config_map_data(&k.name).await?;
                match data.and_then(|d| d.get(&k.key).cloned()) {
                    Some(v) => Some(String::from_utf8_lossy(&v).into_owned()),
                    None if k.optional.unwrap_or(false) => None,
                    None => {
                        let (name, key) = (k.name.clone(), k.key.clone());
                        return Err(EnvError::Missing { kind: "ConfigMap", name, key });
                    }
                }
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            vars.push((e.name.clone(), v));
        }
    }
    Ok(dedup_last_wins(vars))
}

/// Keeps the last value of each name, in first-appearance order.
fn dedup_last_wins(vars: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut order = Vec::new();
    for (k, v) in vars {
        if last.insert(k.clone(), v).is_none() {
            order.push(k);
        }
    }
    order
        .into_iter()
        .map(|k| {
            let v = last.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "oxcd-0", "namespace": "ns1", "uid": "u-1",
                         "labels": {"app": "oxcd", "z": "1"}, "annotations": {"a/b": "c"}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "sa", "containers": []}
        }))
        .unwrap()
    }

    #[test]
    fn downward_api_fields() {
        let facts = PodFacts { pod_ip: "127.1.1.2".into(), host_ip: "127.1.1.1".into() };
        let p = pod();
        let f = |path: &str| field_value(&p, path, &facts).unwrap();
        assert_eq!(f("metadata.name"), "oxcd-0");
        assert_eq!(f("metadata.namespace"), "ns1");
        assert_eq!(f("metadata.uid"), "u-1");
        assert_eq!(f("metadata.labels['app']"), "oxcd");
        assert_eq!(f("metadata.annotations['a/b']"), "c");
        assert_eq!(f("metadata.labels"), "app=\"oxcd\"\nz=\"1\"\n");
        assert_eq!(f("spec.nodeName"), "node-a");
        assert_eq!(f("spec.serviceAccountName"), "sa");
        assert_eq!(f("status.podIP"), "127.1.1.2");
        assert_eq!(f("status.hostIP"), "127.1.1.1");
        assert!(matches!(field_value(&p, "spec.bogus", &facts), Err(EnvError::FieldPath(_))));
    }

    #[test]
    fn later_values_win_in_first_order() {
        let v = dedup_last_wins(vec![
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
            ("A".into(), "3".into()),
        ]);
        assert_eq!(v, vec![("A".into(), "3".into()), ("B".into(), "2".into())]);
    }
}
