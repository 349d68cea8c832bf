//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas can run and
//! only one acts. The holder renews the Lease every [`RENEW`]; another replica takes it over
//! only after the holder has not renewed it for the Lease's duration. Writes are `replace`s
//! carrying the read `resourceVersion`, so two candidates can never both win a round. A holder
//! that cannot renew within the duration stops acting ([`Elector::hold`] returns) before
//! anyone else may take over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::Result;

/// How long a Lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the holder renews.
pub const RENEW: Duration = Duration::from_secs(4);

/// One candidate for a Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl Elector {
    /// A candidate `identity` for Lease `namespace/name`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
        }
    }

    /// One round: acquires or renews the Lease; true while this candidate holds it.
    pub async fn try_acquire(&self) -> Result<bool> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(LEASE_SECONDS),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
        let expired =
            spec.renew_time.as_ref().is_none_or(|t| now.0.as_second() - t.0.as_second() > duration)
                || spec.holder_identity.as_deref().unwrap_or_default().is_empty();
        if !mine && !expired {
            return Ok(false);
        }
        if !mine {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(LEASE_SECONDS);
        spec.renew_time = Some(now);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(RENEW).await;
        }
    }

    /// Renews the Lease until a renewal fails for longer than the Lease's duration or another
    /// candidate holds it; then returns (the caller must stop acting).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        let limit = Duration::from_secs(LEASE_SECONDS as u64) - RENEW;
        loop {
            tokio::time::sleep(RENEW).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!("leader election: another replica holds the Lease");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "leader election: renewal failed"),
            }
            if last_ok.elapsed() > limit {
                tracing::warn!("leader election: could not renew the Lease in time");
                return;
            }
        }
    }

    /// Gives the Lease up (on shutdown) so a standby takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = self.api.replace(&self.name, &PostParams::default(), &lease).await {
            tracing::warn!(error = %e, "releasing the Lease");
        }
    }
}
