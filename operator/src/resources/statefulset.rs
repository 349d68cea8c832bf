//! The StatefulSet of members: one oxcd member per pod, one volume per member, pods listening
//! on their own pod IP and advertising their stable DNS names.
//!
//! `updateStrategy: OnDelete`: the operator, not the StatefulSet controller, decides when a pod
//! restarts (one at a time, the leader last, only while the cluster is healthy), and template
//! changes such as leaving the bootstrap flags never restart a member by themselves.
//! `podManagementPolicy: Parallel`: a member that is down never blocks another's pod.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetOrdinals, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSpec,
    PodTemplateSpec, Probe, TCPSocketAction, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    owned_meta, token, Names, CLIENT_PORT, DATA_DIR, PEER_PORT, VERSION_LABEL, VOLUME_NAME,
};
use crate::crd::{AutoCompactionMode, EtcdCluster, MAX_REPLICAS};

/// How pods created from this template join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// The cluster does not exist yet: pod 0 founds it alone (`--initial-cluster-state new`);
    /// every other member is added learner-first.
    New,
    /// The cluster exists: a pod whose volume is empty joins as the member the operator added
    /// for its peer URL (`--initial-cluster-state existing`). A pod with data ignores both.
    Existing,
    /// Quorum-loss recovery: only the survivor's pod runs (the StatefulSet's ordinals start
    /// at it, one replica), with `--force-new-cluster`.
    Recover {
        /// The survivor's ordinal.
        ordinal: u32,
    },
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The member flags (etcd's), with `$(POD_NAME)`/`$(POD_IP)` expanded by the kubelet.
pub fn args(cluster: &EtcdCluster, bootstrap: Bootstrap) -> Vec<String> {
    let names = Names::of(cluster);
    let host = format!("$(POD_NAME).{}.{}.svc", names.name, names.namespace);
    let initial_cluster = match bootstrap {
        Bootstrap::New => format!("{}={}", names.pod(0), names.peer_url(0)),
        // Every ordinal the cluster may ever have: a joining member asks whichever answers.
        Bootstrap::Existing | Bootstrap::Recover { .. } => (0..MAX_REPLICAS as u32)
            .map(|o| format!("{}={}", names.pod(o), names.peer_url(o)))
            .collect::<Vec<_>>()
            .join(","),
    };
    let state = match bootstrap {
        Bootstrap::New => FOUNDING_FLAG,
        Bootstrap::Existing | Bootstrap::Recover { .. } => "--initial-cluster-state=existing",
    };
    let mut a = vec![
        "--name=$(POD_NAME)".to_string(),
        format!("--data-dir={DATA_DIR}/data"),
        format!("--listen-client-urls=http://$(POD_IP):{CLIENT_PORT}"),
        format!("--listen-peer-urls=http://$(POD_IP):{PEER_PORT}"),
        format!("--advertise-client-urls=http://{host}:{CLIENT_PORT}"),
        format!("--initial-advertise-peer-urls=http://{host}:{PEER_PORT}"),
        format!("--initial-cluster-token={}", token(cluster)),
        state.to_string(),
        format!("--initial-cluster={initial_cluster}"),
    ];
    if let Bootstrap::Recover { .. } = bootstrap {
        a.push("--force-new-cluster".into());
    }
    let s = &cluster.spec.server;
    if let Some(q) = s.quota_backend_bytes {
        a.push(format!("--quota-backend-bytes={q}"));
    }
    if let Some(m) = s.auto_compaction_mode {
        let m = match m {
            AutoCompactionMode::Periodic => "periodic",
            AutoCompactionMode::Revision => "revision",
        };
        a.push(format!("--auto-compaction-mode={m}"));
    }
    if let Some(r) = &s.auto_compaction_retention {
        a.push(format!("--auto-compaction-retention={r}"));
    }
    if let Some(n) = s.snapshot_count {
        a.push(format!("--snapshot-count={n}"));
    }
    if let Some(h) = s.heartbeat_interval {
        a.push(format!("--heartbeat-interval={h}"));
    }
    if let Some(e) = s.election_timeout {
        a.push(format!("--election-timeout={e}"));
    }
    a.extend(s.extra_args.iter().cloned());
    a
}

/// The flag only a founding member's pod carries.
const FOUNDING_FLAG: &str = "--initial-cluster-state=new";

/// Whether `pod` was created from the founding template (`--initial-cluster-state=new`): it
/// keeps those flags through container restarts until the pod itself is recreated.
pub fn is_founding(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    containers.iter().flat_map(|c| c.args.iter().flatten()).any(|a| a == FOUNDING_FLAG)
}

/// Prefer one member per node, so a node failure costs at most one member.
fn default_affinity(names: &Names) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(names.selector()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Pod annotation holding [`template_hash`]: the operator restarts a pod (one at a time) when
/// it differs from the current template's.
pub const TEMPLATE_HASH: &str = "oxcd.dev/template-hash";

/// A stable hash (FNV-1a over the JSON) of everything in the pod template that needs a restart
/// to take effect. The bootstrap flags are left out: they matter only on a member's first
/// start, so leaving the bootstrap template must not restart the founding member.
pub fn template_hash(cluster: &EtcdCluster, bootstrap: Bootstrap) -> String {
    let normalized = match bootstrap {
        Bootstrap::New => Bootstrap::Existing,
        b => b,
    };
    let template = pod_template(cluster, normalized);
    let json = serde_json::to_vec(&template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The StatefulSet `<name>` with `replicas` pods (one, the survivor's, while recovering).
pub fn statefulset(cluster: &EtcdCluster, replicas: u32, bootstrap: Bootstrap) -> StatefulSet {
    let names = Names::of(cluster);
    let (start, replicas) = match bootstrap {
        Bootstrap::Recover { ordinal } => (ordinal, 1),
        _ => (0, replicas),
    };
    let mut template = pod_template(cluster, bootstrap);
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH.into(), template_hash(cluster, bootstrap));
    let spec = &cluster.spec;
    let volume = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(VOLUME_NAME.into()),
            labels: Some(names.labels()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    StatefulSet {
        metadata: owned_meta(cluster, names.name.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas as i32),
            ordinals: Some(StatefulSetOrdinals { start: Some(start as i32) }),
            service_name: Some(names.name.clone()),
            selector: LabelSelector { match_labels: Some(names.selector()), ..Default::default() },
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..Default::default()
            }),
            template,
            volume_claim_templates: Some(vec![volume]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Keeps `existing`'s volumeClaimTemplates in `built`: the API refuses any change to them, so
/// a larger `spec.storage.size` is applied to the volumes themselves, never to the template
/// (pods of later ordinals get the old size and are grown like the others).
pub fn keep_claim_templates(built: &mut StatefulSet, existing: &StatefulSet) {
    let old = existing.spec.as_ref().and_then(|s| s.volume_claim_templates.as_ref());
    let (Some(spec), Some(old)) = (built.spec.as_mut(), old) else { return };
    let Some(templates) = spec.volume_claim_templates.as_mut() else { return };
    for t in templates.iter_mut() {
        let before = old.iter().find(|o| o.metadata.name == t.metadata.name);
        let size = before
            .and_then(|o| o.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage"));
        let requests =
            t.spec.as_mut().and_then(|s| s.resources.as_mut()).and_then(|r| r.requests.as_mut());
        if let (Some(size), Some(requests)) = (size, requests) {
            requests.insert("storage".into(), size.clone());
        }
    }
}

/// The member pod template.
fn pod_template(cluster: &EtcdCluster, bootstrap: Bootstrap) -> PodTemplateSpec {
    let names = Names::of(cluster);
    let spec = &cluster.spec;
    let mut pod_labels = spec.pod.labels.clone();
    pod_labels.extend(names.labels());
    pod_labels.insert(VERSION_LABEL.into(), spec.version.clone());
    let container = Container {
        name: "oxcd".into(),
        image: Some(spec.image()),
        args: Some(args(cluster, bootstrap)),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_IP", "status.podIP"),
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some("client".into()),
                container_port: CLIENT_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("peer".into()),
                container_port: PEER_PORT,
                ..Default::default()
            },
        ]),
        // Ready = this member serves and has a leader (etcd's /health).
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".into()),
                port: IntOrString::Int(CLIENT_PORT),
                ..Default::default()
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        // Alive = the process accepts connections. Not /health: a member must not be killed
        // because the cluster lost its leader or its disk is slow; only a wedged process is
        // restarted, after a minute.
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(CLIENT_PORT),
                ..Default::default()
            }),
            initial_delay_seconds: Some(15),
            period_seconds: Some(10),
            timeout_seconds: Some(10),
            failure_threshold: Some(6),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME_NAME.into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        }]),
        resources: spec.resources.clone(),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!spec.pod.annotations.is_empty()).then(|| spec.pod.annotations.clone()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            // The founding member of a cluster with spec.restore starts from the snapshot.
            init_containers: crate::backup::restore::init_containers(cluster, bootstrap),
            volumes: crate::backup::restore::volumes(cluster, bootstrap),
            affinity: Some(spec.pod.affinity.clone().unwrap_or_else(|| default_affinity(&names))),
            tolerations: (!spec.pod.tolerations.is_empty()).then(|| spec.pod.tolerations.clone()),
            node_selector: (!spec.pod.node_selector.is_empty())
                .then(|| spec.pod.node_selector.clone()),
            priority_class_name: spec.pod.priority_class_name.clone(),
            // A member stops cleanly (raft shutdown, WAL sync) well within this.
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::demo;

    fn arg<'a>(args: &'a [String], flag: &str) -> &'a str {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
            .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
    }

    #[test]
    fn members_listen_on_their_pod_ip_and_advertise_dns_names() {
        let a = args(&demo(), Bootstrap::Existing);
        assert_eq!(arg(&a, "--listen-client-urls"), "http://$(POD_IP):2379");
        assert_eq!(arg(&a, "--listen-peer-urls"), "http://$(POD_IP):2380");
        assert_eq!(arg(&a, "--advertise-client-urls"), "http://$(POD_NAME).demo.ns.svc:2379");
        assert_eq!(arg(&a, "--initial-advertise-peer-urls"), "http://$(POD_NAME).demo.ns.svc:2380");
        assert_eq!(arg(&a, "--initial-cluster-state"), "existing");
        assert_eq!(arg(&a, "--initial-cluster").split(',').count(), 9);
    }

    #[test]
    fn bootstrap_founds_the_cluster_with_pod_zero_alone() {
        let a = args(&demo(), Bootstrap::New);
        assert_eq!(arg(&a, "--initial-cluster-state"), "new");
        assert_eq!(arg(&a, "--initial-cluster"), "demo-0=http://demo-0.demo.ns.svc:2380");
    }

    #[test]
    fn a_pod_of_the_founding_template_is_recognised() {
        let pod = |b| k8s_openapi::api::core::v1::Pod {
            spec: statefulset(&demo(), 1, b).spec.and_then(|s| s.template.spec),
            ..Default::default()
        };
        assert!(is_founding(&pod(Bootstrap::New)));
        assert!(!is_founding(&pod(Bootstrap::Existing)));
        assert!(!is_founding(&pod(Bootstrap::Recover { ordinal: 2 })));
    }

    #[test]
    fn server_options_become_flags() {
        let mut c = demo();
        c.spec.server.quota_backend_bytes = Some(1 << 30);
        c.spec.server.auto_compaction_mode = Some(AutoCompactionMode::Revision);
        c.spec.server.auto_compaction_retention = Some("1000".into());
        c.spec.server.extra_args = vec!["--max-txn-ops=256".into()];
        let a = args(&c, Bootstrap::Existing);
        assert_eq!(arg(&a, "--quota-backend-bytes"), "1073741824");
        assert_eq!(arg(&a, "--auto-compaction-mode"), "revision");
        assert_eq!(a.last().map(String::as_str), Some("--max-txn-ops=256"));
    }

    #[test]
    fn statefulset_shape() {
        let s = statefulset(&demo(), 1, Bootstrap::New);
        let spec = s.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.service_name.as_deref(), Some("demo"));
        assert_eq!(spec.update_strategy.unwrap().type_.as_deref(), Some("OnDelete"));
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.name, "oxcd");
        assert_eq!(
            c.image.as_deref(),
            Some(format!("oxcd:{}", env!("CARGO_PKG_VERSION")).as_str())
        );
        let ready = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(ready.path.as_deref(), Some("/health"));
        assert!(c.liveness_probe.as_ref().unwrap().tcp_socket.is_some());
        let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
        assert!(anti.preferred_during_scheduling_ignored_during_execution.is_some());
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let env = c.env.as_ref().unwrap();
        assert!(env.iter().any(|e| e.name == "POD_IP"
            && e.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path
                == "status.podIP"));
    }

    #[test]
    fn recovery_runs_only_the_survivor_with_force_new_cluster() {
        let s = statefulset(&demo(), 3, Bootstrap::Recover { ordinal: 2 });
        let spec = s.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.ordinals.unwrap().start, Some(2));
        let args = spec.template.spec.unwrap().containers[0].args.clone().unwrap();
        assert!(args.contains(&"--force-new-cluster".to_string()));
        assert_eq!(arg(&args, "--initial-cluster-state"), "existing");
        let normal = statefulset(&demo(), 3, Bootstrap::Existing).spec.unwrap();
        assert_eq!(normal.ordinals.unwrap().start, Some(0));
        assert!(!normal.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap()
            .contains(&"--force-new-cluster".to_string()));
    }

    #[test]
    fn leaving_bootstrap_keeps_the_template_hash_but_a_new_version_changes_it() {
        let c = demo();
        assert_eq!(template_hash(&c, Bootstrap::New), template_hash(&c, Bootstrap::Existing));
        assert_ne!(
            template_hash(&c, Bootstrap::Existing),
            template_hash(&c, Bootstrap::Recover { ordinal: 0 })
        );
        let mut newer = demo();
        newer.spec.version = "9.9.9".into();
        assert_ne!(
            template_hash(&c, Bootstrap::Existing),
            template_hash(&newer, Bootstrap::Existing)
        );
        let sts = statefulset(&c, 3, Bootstrap::New);
        let annotations = sts.spec.unwrap().template.metadata.unwrap().annotations.unwrap();
        assert_eq!(annotations[TEMPLATE_HASH], template_hash(&c, Bootstrap::Existing));
    }

    #[test]
    fn a_grown_size_leaves_the_existing_claim_template_alone() {
        let old = statefulset(&demo(), 3, Bootstrap::Existing);
        let mut bigger = demo();
        bigger.spec.storage.size = "2Gi".into();
        let mut built = statefulset(&bigger, 3, Bootstrap::Existing);
        keep_claim_templates(&mut built, &old);
        let size = |s: &StatefulSet| {
            let t = &s.spec.as_ref().unwrap().volume_claim_templates.as_ref().unwrap()[0];
            t.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()
                ["storage"]
                .clone()
        };
        assert_eq!(size(&built), Quantity("1Gi".into()));
        assert_eq!(built.spec, old.spec, "nothing else differs");
    }

    #[test]
    fn pod_overrides_replace_the_defaults() {
        let mut c = demo();
        c.spec.pod.affinity = Some(Affinity::default());
        c.spec.pod.priority_class_name = Some("system-cluster-critical".into());
        c.spec.pod.labels.insert("team".into(), "infra".into());
        let s = statefulset(&c, 3, Bootstrap::Existing);
        let t = s.spec.unwrap().template;
        assert_eq!(t.metadata.unwrap().labels.unwrap()["team"], "infra");
        let pod = t.spec.unwrap();
        assert_eq!(pod.affinity, Some(Affinity::default()));
        assert_eq!(pod.priority_class_name.as_deref(), Some("system-cluster-critical"));
    }
}
