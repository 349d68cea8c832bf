//! One reconcile against a fake API server (a `tower` service answering like kube-apiserver):
//! checks the exact writes of a step, which the rig tests only see through their effects.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use super::*;
use crate::resources::tests::demo;

/// One request the fake saw: method, path and query, JSON body.
type Seen = (String, String, Value);

/// A fake API server with no objects but `cluster`: lists are empty, GETs are 404, writes
/// are echoed back (the status patch returns the cluster with that status).
fn fake(cluster: EtcdCluster) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let log = log.clone();
        let cluster = cluster.clone();
        async move {
            let method = req.method().to_string();
            let path = req.uri().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            log.lock().unwrap().push((method.clone(), path.clone(), body.clone()));
            let (code, answer) = match method.as_str() {
                "GET" if path.contains("labelSelector") => (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}),
                ),
                "GET" => (
                    StatusCode::NOT_FOUND,
                    json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                           "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
                "PATCH" if path.contains("/status") => {
                    let mut c = serde_json::to_value(&cluster).unwrap();
                    c["status"] = body["status"].clone();
                    (StatusCode::OK, c)
                }
                "POST" => (StatusCode::CREATED, body),
                _ => (StatusCode::OK, body),
            };
            let resp = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    (Client::new(service, "ns"), seen)
}

fn context(client: Client) -> Arc<Context> {
    Arc::new(Context::new(client, Metrics::new(), "test"))
}

#[tokio::test]
async fn a_new_cluster_gets_its_objects_and_a_one_pod_bootstrap_statefulset() {
    let cluster = demo();
    let (client, seen) = fake(cluster.clone());
    let action = reconcile(Arc::new(cluster), context(client)).await.expect("reconcile");
    assert_eq!(action, Action::requeue(AFTER_STEP));
    let seen = seen.lock().unwrap().clone();
    let writes: Vec<(String, String)> = seen
        .iter()
        .filter(|(m, _, _)| m != "GET")
        .map(|(m, p, _)| (m.clone(), p.split('?').next().unwrap_or_default().to_string()))
        .collect();
    let expect = |m: &str, p: &str| (m.to_string(), p.to_string());
    assert_eq!(
        writes,
        vec![
            expect("PATCH", "/api/v1/namespaces/ns/services/demo"),
            expect("PATCH", "/api/v1/namespaces/ns/services/demo-client"),
            expect("PATCH", "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/demo"),
            expect("PATCH", "/apis/apps/v1/namespaces/ns/statefulsets/demo"),
            expect("POST", "/apis/events.k8s.io/v1/namespaces/ns/events"),
            expect("POST", "/apis/events.k8s.io/v1/namespaces/ns/events"),
            expect("PATCH", "/apis/oxcd.dev/v1alpha1/namespaces/ns/etcdclusters/demo/status"),
        ]
    );
    // Server-side apply under the operator's field manager, forced.
    let sts_patch =
        seen.iter().find(|(m, p, _)| m == "PATCH" && p.contains("statefulsets/demo")).unwrap();
    assert!(
        sts_patch.1.contains("fieldManager=oxcd-operator") && sts_patch.1.contains("force=true")
    );
    let sts = &sts_patch.2;
    assert_eq!(sts["spec"]["replicas"], 1);
    let args = sts["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap();
    assert!(args.contains(&json!("--initial-cluster-state=new")), "{args:?}");
    assert_eq!(sts["metadata"]["ownerReferences"][0]["kind"], "EtcdCluster");
    let status = &seen.last().unwrap().2["status"];
    assert_eq!(status["phase"], "Creating");
    assert_eq!(status["target"]["replicas"], 3);
    assert_eq!(status["ready"], "0/3");
}

#[tokio::test]
async fn a_bootstrapped_cluster_without_its_statefulset_gets_one_that_joins_not_founds() {
    let mut cluster = demo();
    cluster.status = Some(crate::crd::EtcdClusterStatus {
        cluster_id: Some("c1".into()),
        phase: Some("Running".into()),
        ..Default::default()
    });
    let (client, seen) = fake(cluster.clone());
    // No StatefulSet is found, so the planner recreates it; with the cluster id known the
    // template joins (`existing`) instead of founding a second cluster.
    reconcile(Arc::new(cluster), context(client)).await.expect("reconcile");
    let seen = seen.lock().unwrap().clone();
    let sts =
        &seen.iter().find(|(m, p, _)| m == "PATCH" && p.contains("statefulsets/demo")).unwrap().2;
    let args = sts["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap();
    assert!(args.contains(&json!("--initial-cluster-state=existing")), "{args:?}");
}
