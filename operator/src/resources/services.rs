//! The two Services: a headless peer Service that gives every member a stable DNS name (also
//! before it is ready, so members can find each other while they start), and the client
//! Service `<name>-client` that reaches the ready members.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_meta, Names, CLIENT_PORT, PEER_PORT};
use crate::crd::EtcdCluster;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The headless peer Service `<name>`.
pub fn peer_service(cluster: &EtcdCluster) -> Service {
    let names = Names::of(cluster);
    Service {
        metadata: owned_meta(cluster, names.name.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector()),
            ports: Some(vec![port("client", CLIENT_PORT), port("peer", PEER_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The client Service `<name>-client` (ready members only).
pub fn client_service(cluster: &EtcdCluster) -> Service {
    let names = Names::of(cluster);
    Service {
        metadata: owned_meta(cluster, names.client_service()),
        spec: Some(ServiceSpec {
            selector: Some(names.selector()),
            ports: Some(vec![port("client", CLIENT_PORT)]),
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
    fn peer_service_is_headless_and_publishes_unready_members() {
        let s = peer_service(&demo());
        let spec = s.spec.unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("demo"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.ports.unwrap().len(), 2);
    }

    #[test]
    fn client_service_serves_the_client_port() {
        let s = client_service(&demo());
        assert_eq!(s.metadata.name.as_deref(), Some("demo-client"));
        let ports = s.spec.unwrap().ports.unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, 2379);
    }
}
