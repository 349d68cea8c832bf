//! The operator's Prometheus metrics, served on `/metrics`: reconciles, their durations and
//! failures (labelled by `Error::metric_label`), the steps taken, and per-cluster gauges of
//! members, healthy members and leadership, so an alert can fire on the operator's view.

use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::crd::EtcdClusterStatus;

/// Every metric of the operator, in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles run, by cluster.
    pub reconciles: IntCounterVec,
    /// Failed reconciles, by error kind.
    pub failures: IntCounterVec,
    /// Reconcile durations.
    pub duration: HistogramVec,
    /// Steps taken, by kind.
    pub steps: IntCounterVec,
    /// Members listed, by cluster.
    pub members: IntGaugeVec,
    /// Healthy voting members, by cluster.
    pub healthy_members: IntGaugeVec,
    /// 1 if the cluster has a leader.
    pub has_leader: IntGaugeVec,
    /// 1 while this replica holds the leader-election Lease.
    pub is_leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let cluster = &["namespace", "cluster"];
        let m = Metrics {
            reconciles: IntCounterVec::new(
                Opts::new("oxcd_operator_reconciles_total", "Reconciles run"),
                cluster,
            )
            .expect("valid metric"),
            failures: IntCounterVec::new(
                Opts::new("oxcd_operator_reconcile_errors_total", "Reconciles that failed"),
                &["error"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new("oxcd_operator_reconcile_duration_seconds", "Reconcile time")
                    .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                &[],
            )
            .expect("valid metric"),
            steps: IntCounterVec::new(
                Opts::new("oxcd_operator_steps_total", "Steps acted on, by kind"),
                &["step"],
            )
            .expect("valid metric"),
            members: IntGaugeVec::new(
                Opts::new("oxcd_operator_cluster_members", "Members listed by the cluster"),
                cluster,
            )
            .expect("valid metric"),
            healthy_members: IntGaugeVec::new(
                Opts::new("oxcd_operator_cluster_healthy_members", "Healthy voting members"),
                cluster,
            )
            .expect("valid metric"),
            has_leader: IntGaugeVec::new(
                Opts::new("oxcd_operator_cluster_has_leader", "1 if the cluster has a leader"),
                cluster,
            )
            .expect("valid metric"),
            is_leader: IntGauge::new(
                "oxcd_operator_is_leader",
                "1 while this operator replica holds the leader-election Lease",
            )
            .expect("valid metric"),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.reconciles.clone()),
            Box::new(m.failures.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.steps.clone()),
            Box::new(m.members.clone()),
            Box::new(m.healthy_members.clone()),
            Box::new(m.has_leader.clone()),
            Box::new(m.is_leader.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric registered once");
        }
        m
    }

    /// Starts timing a reconcile of `namespace/cluster`; the duration is recorded on drop.
    pub fn reconcile(&self, namespace: &str, cluster: &str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[namespace, cluster]).inc();
        ReconcileTimer { metrics: self.clone(), start: Instant::now() }
    }

    /// Records the cluster gauges from a status.
    pub fn observe_cluster(&self, namespace: &str, cluster: &str, status: &EtcdClusterStatus) {
        let l = [namespace, cluster];
        self.members.with_label_values(&l).set(status.members.len() as i64);
        self.healthy_members.with_label_values(&l).set(status.ready_replicas as i64);
        self.has_leader.with_label_values(&l).set(i64::from(status.leader.is_some()));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Records a reconcile's duration when dropped (so early returns are timed too).
pub struct ReconcileTimer {
    metrics: Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .with_label_values(&[] as &[&str])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_cluster_gauges() {
        let m = Metrics::new();
        drop(m.reconcile("ns", "demo"));
        let status = EtcdClusterStatus {
            ready_replicas: 3,
            leader: Some("demo-0".into()),
            ..Default::default()
        };
        m.observe_cluster("ns", "demo", &status);
        let text = m.render();
        assert!(text
            .contains(r#"oxcd_operator_cluster_healthy_members{cluster="demo",namespace="ns"} 3"#));
        assert!(
            text.contains(r#"oxcd_operator_cluster_has_leader{cluster="demo",namespace="ns"} 1"#)
        );
        assert!(text.contains("oxcd_operator_reconcile_duration_seconds_count 1"));
    }
}
