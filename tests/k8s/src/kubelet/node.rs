//! The Node object, its heartbeat Lease, and the one-node scheduler.
//!
//! The Node is registered Ready with capacity and an InternalIP (the range's `.1`); its Lease in
//! `kube-node-lease` is renewed every [`LEASE_RENEW`] and its Ready condition's heartbeat every
//! [`STATUS_RENEW`], so kube-controller-manager's node lifecycle controller keeps it Ready only
//! while this kubelet runs. The scheduler binds every pending pod (no `nodeName`, the default
//! scheduler, not terminating) to this node through the `binding` subresource.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Binding, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

/// How often the node Lease is renewed (kubelet's default).
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How often the Ready condition's heartbeat is refreshed.
pub const STATUS_RENEW: Duration = Duration::from_secs(60);
/// The Lease duration (kubelet's default).
const LEASE_SECONDS: i32 = 40;

/// What the Node reports.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub ip: String,
    /// Capacity and allocatable: cpu, memory, pods, ephemeral-storage.
    pub capacity: Vec<(String, String)>,
}

/// Creates (or takes over) the Node and reports it Ready.
pub async fn register(client: &Client, node: &NodeSpec) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let obj: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "oxcd.io/process-kubelet": "true",
            }
        },
        "spec": {},
    }))
    .map_err(kube::Error::SerdeError)?;
    match nodes.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    nodes
        .patch_status(&node.name, &PatchParams::default(), &Patch::Strategic(status(node)))
        .await?;
    Ok(())
}

/// The Node status patch: Ready, no pressure, capacity, addresses, node info.
fn status(node: &NodeSpec) -> serde_json::Value {
    let now = Time(Timestamp::now());
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({"type": type_, "status": status, "reason": reason, "message": message,
                           "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity: serde_json::Map<String, serde_json::Value> = node
        .capacity
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({"status": {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            cond("Ready", "True", "KubeletReady", "process kubelet is posting ready status"),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": node.ip},
            {"type": "Hostname", "address": node.name},
        ],
        "nodeInfo": {
            "machineID": "oxcd-process-kubelet", "systemUUID": node.name, "bootID": "process-kubelet",
            "kernelVersion": "", "osImage": "oxcd process kubelet", "containerRuntimeVersion": "process://1",
            "kubeletVersion": "v1.36.3", "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
    }})
}

/// Renews the Lease once (creating it if needed).
pub async fn renew_lease(client: &Client, node: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = MicroTime(Timestamp::now());
    let patch = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now},
    });
    let pp = PatchParams::apply("oxcd-process-kubelet").force();
    leases.patch(node, &pp, &Patch::Apply(patch)).await?;
    Ok(())
}

/// Keeps the Node alive: Lease every [`LEASE_RENEW`], status every [`STATUS_RENEW`]. Runs until
/// aborted; failures are logged and retried on the next beat.
pub async fn heartbeat(client: Client, node: NodeSpec) {
    let mut beats: u64 = 0;
    loop {
        if let Err(e) = renew_lease(&client, &node.name).await {
            tracing::warn!(node = %node.name, error = %e, "renewing the node lease");
        }
        if beats.is_multiple_of((STATUS_RENEW.as_secs() / LEASE_RENEW.as_secs()).max(1))
            && beats > 0
        {
            if let Err(e) = register(&client, &node).await {
                tracing::warn!(node = %node.name, error = %e, "refreshing the node status");
            }
        }
        beats += 1;
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

/// Deletes the Node and its Lease (on a clean shutdown).
pub async fn deregister(client: &Client, node: &str) {
    let _ = Api::<Node>::all(client.clone()).delete(node, &DeleteParams::default()).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let _ = leases.delete(node, &DeleteParams::default()).await;
}

/// Whether the scheduler should bind `pod` (pending, default scheduler, not terminating).
pub fn wants_binding(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let unbound = spec.node_name.as_deref().unwrap_or("").is_empty();
    let default_scheduler =
        matches!(spec.scheduler_name.as_deref(), None | Some("default-scheduler"));
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    unbound && default_scheduler && !finished && pod.metadata.deletion_timestamp.is_none()
}

/// Binds `pod` to `node`.
pub async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let binding: Binding = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name_any(), "namespace": ns, "uid": pod.uid()},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }))
    .map_err(kube::Error::SerdeError)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let _: serde_json::Value = pods
        .create_subresource("binding", &pod.name_any(), &PostParams::default(), &binding)
        .await?;
    Ok(())
}
