//! What the resource-driven tests (backups, restores, migration) share: a control plane on
//! oxcd with the process kubelet, both CRDs established, and the operator running in this
//! process (`oxcd_operator::app::run`, the binary's code); plus waits and reads on clusters.

#![allow(dead_code)] // Each test file uses its own part.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use oxcd_e2e::etcdctl::{CtlVersion, Etcdctl};
use oxcd_k8s_rig::kubelet::{Kubelet, KubeletOptions};
use oxcd_k8s_rig::poll::wait_some;
use oxcd_k8s_rig::{ControlPlane, Options, StorageKind};
use oxcd_operator::crd::EtcdCluster;

/// The namespace of every object.
pub const NS: &str = "default";
/// Upper bound for any one condition (a loaded 2-core machine is slow).
pub const WAIT: Duration = Duration::from_secs(240);

/// The rig with the operator; dropping it stops everything.
pub struct Rig {
    /// The control plane.
    pub cp: ControlPlane,
    /// The node.
    pub kubelet: Kubelet,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    operator: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Rig {
    /// Starts the control plane and kubelet, installs the CRDs, starts the operator.
    pub async fn start(identity: &str) -> Rig {
        let cp = ControlPlane::start(Options::new(StorageKind::Oxcd)).await.expect("control plane");
        let kubelet = Kubelet::start(cp.client(), KubeletOptions::new(cp.dir().join("kubelet")))
            .await
            .expect("kubelet");
        let crds = oxcd_operator::crd::crd_yaml()
            + "---\n"
            + &oxcd_operator::backup::api::snapshot_crd_yaml();
        cp.kubectl_input(&["apply", "-f", "-"], Some(&crds)).assert_success();
        let crd_api: Api<CustomResourceDefinition> = Api::all(cp.client());
        for name in ["etcdclusters.oxcd.dev", "etcdsnapshots.oxcd.dev"] {
            wait_some(WAIT, &format!("CRD {name} established"), || async {
                let c = crd_api.get(name).await.ok()?;
                let ok = c
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                ok.then_some(())
            })
            .await;
        }
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let operator = tokio::spawn(oxcd_operator::app::run(
            cp.client(),
            oxcd_operator::app::Options {
                metrics_addr: "127.0.0.1:0".parse().expect("address"),
                namespace: None,
                lease_namespace: Some(NS.into()),
                lease_name: "oxcd-operator".into(),
                identity: identity.into(),
            },
            async move {
                let _ = rx.await;
            },
        ));
        Rig { cp, kubelet, stop: Some(stop), operator: Some(operator) }
    }

    /// The admin client.
    pub fn client(&self) -> Client {
        self.cp.client()
    }

    /// `kubectl apply -n default -f -` of `yaml`, which must succeed.
    pub fn apply(&self, yaml: &str) {
        self.cp.kubectl_input(&["apply", "-n", NS, "-f", "-"], Some(yaml)).assert_success();
    }

    /// Stops the operator (then the rig goes when dropped).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(o) = self.operator.take() {
            let _ = o.await;
        }
    }
}

/// Waits until `name` runs `n` healthy voting members and nothing else.
pub async fn wait_ready(client: &Client, name: &str, n: usize) {
    let clusters: Api<EtcdCluster> = Api::namespaced(client.clone(), NS);
    wait_some(WAIT, &format!("{name} with {n} ready members"), || async {
        let s = clusters.get(name).await.ok()?.status?;
        let voters = s.members.iter().filter(|m| !m.learner && m.healthy).count();
        (s.phase.as_deref() == Some("Running") && voters == n && s.members.len() == n).then_some(())
    })
    .await;
}

/// etcdctl on a cluster's member names (always resolvable on the rig).
pub fn etcdctl(name: &str, n: u32) -> Etcdctl {
    let mut endpoints = vec![format!("http://{name}-client.{NS}.svc:2379")];
    endpoints.extend((0..n).map(|o| format!("http://{name}-{o}.{name}.{NS}.svc:2379")));
    Etcdctl::new(CtlVersion::V34, endpoints)
}

/// etcdctl on one member only.
pub fn member_ctl(name: &str, ordinal: u32) -> Etcdctl {
    Etcdctl::new(CtlVersion::V34, [format!("http://{name}-{ordinal}.{name}.{NS}.svc:2379")])
}
