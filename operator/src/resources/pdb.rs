//! The PodDisruptionBudget: voluntary evictions (node drains) take at most one member down at a
//! time, which any cluster of three or more survives.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_meta, Names};
use crate::crd::EtcdCluster;

/// The PodDisruptionBudget `<name>` (maxUnavailable 1).
pub fn pod_disruption_budget(cluster: &EtcdCluster) -> PodDisruptionBudget {
    let names = Names::of(cluster);
    PodDisruptionBudget {
        metadata: owned_meta(cluster, names.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::demo;

    #[test]
    fn at_most_one_member_down() {
        let p = pod_disruption_budget(&demo());
        let spec = p.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.selector.unwrap().match_labels.unwrap()["oxcd.dev/cluster"], "demo");
    }
}
