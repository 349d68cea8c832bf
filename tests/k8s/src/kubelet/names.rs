//! The names a real cluster's DNS would answer, computed for the kubelet's `/etc/hosts` block.
//!
//! * A pod with `hostname` and `subdomain` (a StatefulSet's pods): `<hostname>.<subdomain>.<ns>.svc`
//!   and `….svc.<cluster domain>` → its pod address, from the moment it has one (as a headless
//!   Service with `publishNotReadyAddresses` would publish it).
//! * A Service `<svc>.<ns>.svc[.<domain>]` → one ready pod its selector matches (kept while it
//!   stays ready; there is no kube-proxy, so the client connects to the pod directly on the
//!   Service's port, which must equal the target port); a headless Service → every ready pod
//!   (every pod with an address when it publishes not-ready addresses). The endpoints are
//!   computed from the pods, not read from EndpointSlices: the API refuses loopback addresses in
//!   EndpointSlices, so kube-controller-manager cannot publish our pods there.
//!
//! Pure functions over the API objects; the kubelet writes the result.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;

use super::hosts::Entries;

/// Whether a pod's Ready condition is True.
fn pod_ready(p: &Pod) -> bool {
    let conds = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conds.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The DNS names of a pod (none without `subdomain`).
pub fn pod_names(pod: &Pod, domain: &str) -> Vec<String> {
    let spec = pod.spec.as_ref();
    let Some(sub) = spec.and_then(|s| s.subdomain.clone()).filter(|s| !s.is_empty()) else {
        return vec![];
    };
    let host = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.name_any());
    let ns = pod.namespace().unwrap_or_default();
    vec![format!("{host}.{sub}.{ns}.svc"), format!("{host}.{sub}.{ns}.svc.{domain}")]
}

/// The hostname a pod's processes see.
pub fn pod_hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let h = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.name_any());
    h.chars().take(63).collect()
}

/// Service name → addresses, remembering which endpoint each ClusterIP Service currently
/// resolves to so that a name does not move while its endpoint stays ready.
#[derive(Debug, Default)]
pub struct ServiceNames {
    picked: BTreeMap<(String, String), Ipv4Addr>,
}

impl ServiceNames {
    /// Entries for every Service with ready IPv4 endpoints.
    pub fn entries(
        &mut self,
        services: &[std::sync::Arc<Service>],
        pods: &[std::sync::Arc<Pod>],
        domain: &str,
    ) -> Entries {
        let mut ready: BTreeMap<(String, String), BTreeSet<Ipv4Addr>> = BTreeMap::new();
        for svc in services {
            let key = (svc.namespace().unwrap_or_default(), svc.name_any());
            let spec = svc.spec.clone().unwrap_or_default();
            let Some(selector) = spec.selector.filter(|s| !s.is_empty()) else { continue };
            let not_ready_too = spec.publish_not_ready_addresses.unwrap_or(false);
            let set = ready.entry(key.clone()).or_default();
            for p in pods {
                if p.namespace().as_deref() != Some(key.0.as_str()) {
                    continue;
                }
                let labels = p.labels();
                if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    continue;
                }
                let serving =
                    not_ready_too || (p.metadata.deletion_timestamp.is_none() && pod_ready(p));
                let ip = p
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|i| i.parse().ok());
                if let (true, Some(ip)) = (serving, ip) {
                    set.insert(ip);
                }
            }
        }
        let mut out = Entries::new();
        let mut picked = BTreeMap::new();
        for svc in services {
            let key = (svc.namespace().unwrap_or_default(), svc.name_any());
            let spec = svc.spec.clone().unwrap_or_default();
            if spec.type_.as_deref() == Some("ExternalName") {
                continue;
            }
            let Some(addrs) = ready.get(&key).filter(|a| !a.is_empty()) else { continue };
            let names =
                [format!("{}.{}.svc", key.1, key.0), format!("{}.{}.svc.{domain}", key.1, key.0)];
            let chosen: Vec<Ipv4Addr> = if spec.cluster_ip.as_deref() == Some("None") {
                addrs.iter().copied().collect()
            } else {
                let keep = self.picked.get(&key).filter(|ip| addrs.contains(ip)).copied();
                let ip = keep.unwrap_or_else(|| *addrs.iter().next().expect("non-empty"));
                picked.insert(key.clone(), ip);
                vec![ip]
            };
            for ip in chosen {
                out.entry(ip).or_default().extend(names.iter().cloned());
            }
        }
        self.picked = picked;
        out
    }
}

/// Adds `more` to `into`, keeping each address' names unique and in order.
pub fn merge(into: &mut Entries, more: Entries) {
    for (ip, names) in more {
        let v = into.entry(ip).or_default();
        for n in names {
            if !v.contains(&n) {
                v.push(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn svc(name: &str, headless: bool) -> Arc<Service> {
        let ip = if headless { "None" } else { "10.96.0.10" };
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"clusterIP": ip, "ports": [{"port": 2379}], "selector": {"app": name}}
            }))
            .unwrap(),
        )
    }

    fn pods(app: &str, eps: &[(&str, bool)]) -> Vec<Arc<Pod>> {
        eps.iter()
            .enumerate()
            .map(|(i, (ip, ready))| {
                let status = if *ready { "True" } else { "False" };
                Arc::new(
                    serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("{app}-{i}"), "namespace": "ns", "labels": {"app": app}},
                        "spec": {"containers": []},
                        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": status}]},
                    }))
                    .unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn cluster_ip_service_sticks_to_one_ready_endpoint() {
        let mut n = ServiceNames::default();
        let services = vec![svc("c", false)];
        let e = n.entries(
            &services,
            &pods("c", &[("127.1.1.3", true), ("127.1.1.2", false), ("127.1.1.4", true)]),
            "cluster.local",
        );
        let ip3: Ipv4Addr = "127.1.1.3".parse().unwrap();
        assert_eq!(e.keys().copied().collect::<Vec<_>>(), vec![ip3]);
        assert_eq!(e[&ip3], vec!["c.ns.svc".to_string(), "c.ns.svc.cluster.local".to_string()]);
        // 127.1.1.2 becomes ready: the name stays on .3.
        let e = n.entries(
            &services,
            &pods("c", &[("127.1.1.3", true), ("127.1.1.2", true)]),
            "cluster.local",
        );
        assert!(e.contains_key(&ip3));
        // .3 goes away: the name moves.
        let e = n.entries(&services, &pods("c", &[("127.1.1.2", true)]), "cluster.local");
        assert!(e.contains_key(&"127.1.1.2".parse().unwrap()));
        // No ready endpoint: no name.
        assert!(n
            .entries(&services, &pods("c", &[("127.1.1.2", false)]), "cluster.local")
            .is_empty());
    }

    #[test]
    fn headless_service_lists_every_ready_endpoint() {
        let mut n = ServiceNames::default();
        let e = n.entries(
            &[svc("h", true)],
            &pods("h", &[("127.1.1.3", true), ("127.1.1.4", true), ("127.1.1.5", false)]),
            "cluster.local",
        );
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn pod_dns_names() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "oxcd-1", "namespace": "ns"},
            "spec": {"hostname": "oxcd-1", "subdomain": "oxcd", "containers": []}
        }))
        .unwrap();
        assert_eq!(
            pod_names(&pod, "cluster.local"),
            vec!["oxcd-1.oxcd.ns.svc", "oxcd-1.oxcd.ns.svc.cluster.local"]
        );
        assert_eq!(pod_hostname(&pod), "oxcd-1");
        let plain: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": []}}),
        )
        .unwrap();
        assert!(pod_names(&plain, "cluster.local").is_empty());
        assert_eq!(pod_hostname(&plain), "p");
    }
}
