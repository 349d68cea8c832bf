//! Observation: what the objects say (StatefulSet, pods, volumes) and what the members say
//! themselves (each reachable pod's status, the member list). Read-only; the planner turns it
//! into a step and `status` into the resource's status.

use std::collections::BTreeMap;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::crd::EtcdCluster;
use crate::members::{self, Listed, Status};
use crate::plan::{Health, MemberObs, Observed, PodObs, VolumeObs};
use crate::resources::Names;
use crate::Result;

/// One observation of a cluster.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The cluster's names.
    pub names: Names,
    /// The StatefulSet, if any.
    pub sts: Option<StatefulSet>,
    /// The member pods, by ordinal.
    pub pods: BTreeMap<u32, Pod>,
    /// The member volumes, by ordinal.
    pub volumes: BTreeMap<u32, PersistentVolumeClaim>,
    /// Each reachable member's status, by member id, with the endpoint that answered.
    pub statuses: BTreeMap<u64, (String, Status)>,
    /// The member id each answering pod's process reports, by ordinal.
    pub answered_by: BTreeMap<u32, u64>,
    /// The member list (from the leader if it answered, else any member).
    pub members: Option<Vec<Listed>>,
    /// Whether each StorageClass of a volume smaller than `spec.storage.size` allows
    /// expansion (read only for those; a missing class allows nothing).
    pub expandable_classes: BTreeMap<String, bool>,
    /// When this was observed.
    pub now: Timestamp,
}

/// Reads everything the planner needs.
pub async fn observe(client: &Client, cluster: &EtcdCluster) -> Result<Observation> {
    let names = Names::of(cluster);
    let ns = names.namespace.as_str();
    let sts = Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(&names.name).await?;
    let lp = ListParams::default().labels(&names.selector_string());
    let pods: BTreeMap<u32, Pod> = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter_map(|p| names.ordinal_of_pod(&p.name_any()).map(|o| (o, p)))
        .collect();
    let volumes: BTreeMap<u32, PersistentVolumeClaim> =
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .list(&lp)
            .await?
            .items
            .into_iter()
            .filter_map(|v| names.ordinal_of_volume(&v.name_any()).map(|o| (o, v)))
            .collect();

    let endpoints: Vec<(u32, String)> = pods
        .iter()
        .filter_map(|(o, p)| Some((*o, p.status.as_ref()?.pod_ip.clone()?)))
        .map(|(o, ip)| (o, members::endpoint(&ip)))
        .collect();
    let answers = join_all(endpoints.iter().map(|(_, e)| members::status(e))).await;
    let mut statuses = BTreeMap::new();
    let mut answered_by = BTreeMap::new();
    for ((ordinal, endpoint), answer) in endpoints.iter().zip(answers) {
        match answer {
            Ok(s) if s.member_id != 0 => {
                answered_by.insert(*ordinal, s.member_id);
                statuses.insert(s.member_id, (endpoint.clone(), s));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%endpoint, error = %e, "member status"),
        }
    }
    // The leader's list is authoritative; any member's will do when there is none.
    let mut order: Vec<&(String, Status)> = statuses.values().collect();
    order.sort_by_key(|(_, s)| s.leader != s.member_id);
    let mut members = None;
    for (endpoint, _) in order {
        match members::list(endpoint).await {
            Ok(list) => {
                members = Some(list);
                break;
            }
            Err(e) => tracing::debug!(%endpoint, error = %e, "member list"),
        }
    }
    let expandable_classes = expandable_classes(client, cluster, &volumes).await?;
    Ok(Observation {
        expandable_classes,
        names,
        sts,
        pods,
        volumes,
        statuses,
        answered_by,
        members,
        now: Timestamp::now(),
    })
}

/// The requested storage of a volume, in bytes.
pub fn requested_bytes(v: &PersistentVolumeClaim) -> Option<u64> {
    let requests = v.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    crate::quantity::bytes(&requests.get("storage")?.0)
}

/// The capacity a volume has (`status.capacity`), in bytes; None before it is bound.
pub fn capacity_bytes(v: &PersistentVolumeClaim) -> Option<u64> {
    let capacity = v.status.as_ref()?.capacity.as_ref()?;
    crate::quantity::bytes(&capacity.get("storage")?.0)
}

/// `allowVolumeExpansion` of the classes of the volumes smaller than the spec asks for.
async fn expandable_classes(
    client: &Client,
    cluster: &EtcdCluster,
    volumes: &BTreeMap<u32, PersistentVolumeClaim>,
) -> Result<BTreeMap<String, bool>> {
    let Some(wanted) = crate::quantity::bytes(&cluster.spec.storage.size) else {
        return Ok(BTreeMap::new());
    };
    let mut classes = BTreeMap::new();
    for v in volumes.values() {
        let small = requested_bytes(v).is_some_and(|has| has < wanted);
        let class = v.spec.as_ref().and_then(|s| s.storage_class_name.clone());
        let Some(class) = class.filter(|_| small) else { continue };
        if classes.contains_key(&class) {
            continue;
        }
        let sc = Api::<StorageClass>::all(client.clone()).get_opt(&class).await?;
        classes.insert(class, sc.and_then(|sc| sc.allow_volume_expansion).unwrap_or(false));
    }
    Ok(classes)
}

impl Observation {
    /// Whether a volume's StorageClass allows expansion (as far as it was read).
    pub fn expandable(&self, v: &PersistentVolumeClaim) -> bool {
        let class = v.spec.as_ref().and_then(|s| s.storage_class_name.as_ref());
        class.and_then(|c| self.expandable_classes.get(c)).copied().unwrap_or(false)
    }

    /// The leader's id and endpoint, as the members report it.
    pub fn leader(&self) -> Option<(u64, &str)> {
        self.statuses
            .values()
            .find(|(_, s)| s.leader == s.member_id && s.leader != 0)
            .map(|(e, s)| (s.member_id, e.as_str()))
    }

    /// The cluster id the members report.
    pub fn cluster_id(&self) -> Option<u64> {
        self.statuses.values().map(|(_, s)| s.cluster_id).find(|c| *c != 0)
    }

    /// The ordinal a listed member belongs to.
    pub fn ordinal_of(&self, m: &Listed) -> Option<u32> {
        m.peer_urls.iter().find_map(|u| self.names.ordinal_of_peer_url(u))
    }

    /// The planner's view; `cluster` supplies what earlier reconciles recorded in status,
    /// `template_hash` the hash of the pod template pods should run.
    pub fn planner_view(&self, cluster: &EtcdCluster, template_hash: &str) -> Observed {
        let status = cluster.status.clone().unwrap_or_default();
        let pods = self
            .pods
            .iter()
            .map(|(o, p)| {
                let running = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Running");
                let hash = p.annotations().get(crate::resources::TEMPLATE_HASH);
                let member_id = self.answered_by.get(o).copied();
                PodObs {
                    ordinal: *o,
                    running,
                    terminating: p.metadata.deletion_timestamp.is_some(),
                    current_template: hash.is_none_or(|h| h == template_hash),
                    member_id,
                    raft_index: member_id
                        .and_then(|id| self.statuses.get(&id))
                        .map(|(_, s)| s.raft_index),
                    founding: crate::resources::is_founding(p),
                }
            })
            .collect();
        let volumes = self
            .volumes
            .iter()
            .map(|(o, v)| VolumeObs {
                ordinal: *o,
                uid: v.metadata.uid.clone().unwrap_or_default(),
                terminating: v.metadata.deletion_timestamp.is_some(),
                requested_bytes: requested_bytes(v),
                expandable: self.expandable(v),
            })
            .collect();
        let members = self.members.as_ref().map(|list| {
            list.iter()
                .map(|m| {
                    let id_hex = format!("{:x}", m.id);
                    let recorded = status.members.iter().find(|r| r.id == id_hex);
                    let health = self.statuses.get(&m.id).map(|(_, s)| Health {
                        leader: s.leader,
                        raft_index: s.raft_index,
                        revision: s.revision,
                        errors: s.errors.clone(),
                    });
                    let since = recorded.and_then(|r| r.unhealthy_since.as_ref());
                    let unhealthy_secs = match (&health, since) {
                        (None, Some(since)) => self.now.as_second() - since.0.as_second(),
                        _ => 0,
                    };
                    let since_defragment_secs = recorded
                        .and_then(|r| r.last_defragment.as_ref())
                        .map(|t| self.now.as_second() - t.0.as_second())
                        .unwrap_or(0);
                    MemberObs {
                        since_defragment_secs,
                        id: m.id,
                        name: m.name.clone(),
                        ordinal: self.ordinal_of(m),
                        learner: m.learner,
                        health,
                        recorded_volume: recorded.and_then(|r| r.volume_uid.clone()),
                        unhealthy_secs,
                    }
                })
                .collect()
        });
        Observed {
            bootstrapped: status.cluster_id.is_some(),
            sts_replicas: self
                .sts
                .as_ref()
                .map(|s| s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as u32),
            pods,
            volumes,
            members,
            recovering: status.recovery.as_ref().map(|r| crate::plan::Recovering {
                ordinal: r.ordinal.max(0) as u32,
                id: u64::from_str_radix(&r.member_id, 16).unwrap_or(0),
                restarting: r.restarting,
            }),
        }
    }
}
