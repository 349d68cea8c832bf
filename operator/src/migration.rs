//! `spec.migration`: the store's online v2 → v3 migration, run once per cluster.
//!
//! oxcd members keep a v2 keys store (`/v2/keys`, with `--enable-v2`) beside the v3 keyspace.
//! `oxcd migrate --endpoints URL` converts it online: `POST /oxcd/v2/migrate` on a member's
//! client port proposes ONE replicated command, so every member converts the same keys at the
//! same revision. The operator makes that call once the cluster is settled and records the
//! outcome in the `Migrated` condition and `status.migration`:
//!
//! - `Migrated=True` is final: the call is never made again, whatever the spec says later
//!   (re-applying the manifest is a no-op, and keys changed through v3 since are never
//!   overwritten by a second conversion);
//! - a refusal (v3 keys already hold other values, auth enabled) is `Migrated=False`,
//!   reason `Refused`, and is not retried until the spec changes (a new generation, e.g.
//!   `overwrite: true`);
//! - anything else (member unreachable, no leader) is retried by the next reconcile;
//! - the call is announced first (`Migrated=False`, reason `Converting`, written to the API
//!   server before the call): an operator that dies after the store converted but before it
//!   recorded the answer finds `Converting` and [`resume`]s: it asks again WITHOUT overwrite,
//!   and an answer of "every key already converted" is recorded as the earlier call's result
//!   (not as a second conversion of nothing); a refusal then is reported, never overwritten.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::{EtcdCluster, EtcdClusterStatus};

/// The condition type.
pub const CONDITION: &str = "Migrated";
/// The reason recorded just before a call: its outcome is unknown until recorded.
pub const CONVERTING: &str = "Converting";
/// The store's endpoint (oxcd's `v2_api::admin::MIGRATE_PATH`).
pub const PATH: &str = "/oxcd/v2/migrate";
/// How long one conversion may take (it is one raft proposal, but of the whole v2 store).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the operator to convert the members' v2 keys into v3 keys once.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    /// Write keys that had a TTL without leases (`oxcd migrate --no-ttl`); by default each
    /// gets a lease granted with its remaining TTL.
    #[serde(default, rename = "noTTL")]
    pub no_ttl: bool,
    /// Replace v3 keys that hold other values (`--overwrite`); by default the migration is
    /// refused when any exists, and nothing is written.
    #[serde(default)]
    pub overwrite: bool,
}

/// What the migration did, as the store reported it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// The revision the v3 keys were written at.
    pub revision: i64,
    /// v3 keys written.
    pub keys: i64,
    /// Of those, keys attached to a lease (they had a TTL).
    #[serde(rename = "keysWithTTL")]
    pub keys_with_ttl: i64,
    /// Leases granted.
    pub leases: i64,
    /// v2 keys whose v3 key already held the value (left alone).
    pub unchanged: i64,
    /// When it completed.
    pub time: Time,
}

/// The store's answer (oxcd's `v2::convert::Converted`).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
struct Converted {
    written: Vec<(String, i64)>,
    unchanged: usize,
    leases: usize,
    revision: i64,
}

/// Why a migration call did not convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// The store refused (existing v3 keys, auth enabled): retrying the same request cannot
    /// help.
    #[error("{0}")]
    Refused(String),
    /// The call failed on the way (retried later).
    #[error("{0}")]
    Failed(String),
}

/// What a reconcile should do about the migration.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not asked for and never run: no condition.
    Nothing,
    /// Keep this condition as it is (done, or refused for this generation).
    Keep(Condition),
    /// Asked for, but the cluster is not settled: record that it waits.
    Wait,
    /// Make the call now.
    Run,
    /// A call was announced and its outcome never recorded (the operator died mid-call):
    /// find out without overwriting anything ([`resume`]).
    Resume,
}

/// Decides from the spec, the recorded conditions, the spec's generation and whether the
/// cluster is settled (every member healthy, no change in flight). Pure.
pub fn decide(
    spec: Option<&MigrationSpec>,
    previous: &[Condition],
    generation: Option<i64>,
    settled: bool,
) -> Decision {
    let recorded = previous.iter().find(|c| c.type_ == CONDITION);
    match recorded {
        Some(c) if c.status == "True" => return Decision::Keep(c.clone()),
        Some(c)
            if spec.is_some() && c.reason == "Refused" && c.observed_generation == generation =>
        {
            return Decision::Keep(c.clone())
        }
        _ => {}
    }
    let announced = recorded.is_some_and(|c| c.reason == CONVERTING);
    match spec {
        None => Decision::Nothing,
        Some(_) if !settled => Decision::Wait,
        Some(_) if announced => Decision::Resume,
        Some(_) => Decision::Run,
    }
}

/// The outcome of a [`Decision::Resume`] call (made without overwrite), as the condition to
/// record. Pure.
///
/// - every key already converted (nothing written): the announced call did it; recorded as
///   done, saying so, with the keys found converted;
/// - keys written: the announced call never reached the store; this one converted them;
/// - refused: v3 keys differ from their v2 values (changed since the announced call, or
///   there before it and the spec asks to overwrite); reported, nothing overwritten;
/// - failed: still unknown; stays `Converting` so the next reconcile asks again.
pub fn resumed(
    outcome: &Result<MigrationStatus, MigrationError>,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let mut c = condition(Some(outcome), previous, generation, now);
    match outcome {
        Ok(s) if s.keys == 0 => {
            c.message = format!(
                "converted by a call whose answer was lost when the operator restarted: {} v2 \
                 keys found converted (store revision {} when checked)",
                s.unchanged, s.revision
            );
        }
        Ok(_) => {}
        Err(MigrationError::Refused(m)) => {
            c.message = format!(
                "the outcome of a call interrupted by an operator restart is unknown; checked \
                 without overwriting: {m}; change spec.migration to convert again"
            );
        }
        Err(MigrationError::Failed(m)) => {
            c.reason = CONVERTING.into();
            c.message = format!(
                "the outcome of a call interrupted by an operator restart is unknown; \
                 checking again: {m}"
            );
        }
    }
    c
}

/// The condition written before a call.
fn announced(previous: &[Condition], generation: Option<i64>, now: Timestamp) -> Condition {
    let mut c = condition(None, previous, generation, now);
    c.reason = CONVERTING.into();
    c.message = format!("converting (call made at {now})");
    c
}

/// Writes the `Converting` condition to the API server before the call (a merge patch of the
/// status' conditions; the reconcile's own status apply follows). An error means no call.
async fn announce(
    client: &kube::Client,
    cluster: &EtcdCluster,
    previous: &[Condition],
    condition: Condition,
) -> Result<(), MigrationError> {
    use kube::ResourceExt;
    let mut conditions: Vec<Condition> =
        previous.iter().filter(|c| c.type_ != CONDITION).cloned().collect();
    conditions.push(condition);
    let api: kube::Api<EtcdCluster> =
        kube::Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": { "conditions": conditions } });
    api.patch_status(
        &cluster.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| MigrationError::Failed(format!("recording the call before making it: {e}")))
}

/// The condition for an outcome (`None`: waiting for the cluster to settle).
pub fn condition(
    outcome: Option<&Result<MigrationStatus, MigrationError>>,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let (ok, reason, message) = match outcome {
        Some(Ok(s)) => (
            true,
            "Migrated",
            format!(
                "converted {} v2 keys into v3 keys at revision {} ({} with a TTL, in {} leases; \
                 {} already converted)",
                s.keys, s.revision, s.keys_with_ttl, s.leases, s.unchanged
            ),
        ),
        Some(Err(MigrationError::Refused(m))) => (false, "Refused", m.clone()),
        Some(Err(MigrationError::Failed(m))) => (false, "Failed", m.clone()),
        None => (false, "Waiting", "waiting for every member to be healthy".to_string()),
    };
    let status = if ok { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == CONDITION && c.status == status)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: last.unwrap_or(Time(now)),
    }
}

/// The migration part of one reconcile: runs it if due (on the leader, once the cluster is
/// settled), then puts its condition and `status.migration` into `status`. Returns the
/// outcome of a call made now, for an Event.
pub async fn reconcile(
    client: &kube::Client,
    cluster: &EtcdCluster,
    leader: Option<&str>,
    settled: bool,
    status: &mut EtcdClusterStatus,
    now: Timestamp,
) -> Option<Result<MigrationStatus, MigrationError>> {
    let previous = cluster.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = cluster.metadata.generation;
    let spec = cluster.spec.migration.as_ref();
    let (cond, outcome) = match decide(spec, previous, generation, settled && leader.is_some()) {
        Decision::Nothing => return None,
        Decision::Keep(c) => (c, None),
        Decision::Wait => (condition(None, previous, generation, now), None),
        decision @ (Decision::Run | Decision::Resume) => {
            let (Some(spec), Some(endpoint)) = (spec, leader) else { return None };
            // The reconcile may have started from a cached object older than the status that
            // recorded the migration: the API server's copy decides before anything runs.
            if let Some(done) = recorded_done(client, cluster).await {
                status.migration = done.1;
                status.conditions.retain(|c| c.type_ != CONDITION);
                status.conditions.push(done.0);
                return None;
            }
            let resuming = decision == Decision::Resume;
            let outcome = if resuming {
                migrate(endpoint, &MigrationSpec { overwrite: false, ..spec.clone() }).await
            } else {
                let intent = announced(previous, generation, now);
                match announce(client, cluster, previous, intent).await {
                    Ok(()) => migrate(endpoint, spec).await,
                    Err(e) => Err(e),
                }
            };
            match &outcome {
                Ok(done) => {
                    tracing::info!(revision = done.revision, keys = done.keys, "v2 keys migrated");
                    status.migration = Some(done.clone());
                }
                Err(e) => tracing::warn!(error = %e, "v2 migration"),
            }
            let cond = if resuming {
                resumed(&outcome, previous, generation, now)
            } else {
                condition(Some(&outcome), previous, generation, now)
            };
            (cond, Some(outcome))
        }
    };
    status.conditions.retain(|c| c.type_ != CONDITION);
    status.conditions.push(cond);
    outcome
}

/// The `Migrated=True` condition and `status.migration` of the API server's copy of
/// `cluster`, if it has them. A failed read counts as not done: the store's conversion is
/// itself safe to repeat (keys holding their v2 value are left alone).
async fn recorded_done(
    client: &kube::Client,
    cluster: &EtcdCluster,
) -> Option<(Condition, Option<MigrationStatus>)> {
    use kube::ResourceExt;
    let api: kube::Api<EtcdCluster> =
        kube::Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let status = api.get_status(&cluster.name_any()).await.ok()?.status?;
    let done = status.conditions.iter().find(|c| c.type_ == CONDITION && c.status == "True")?;
    Some((done.clone(), status.migration))
}

/// Runs the online migration on the member at `endpoint` (its client URL).
pub async fn migrate(
    endpoint: &str,
    spec: &MigrationSpec,
) -> Result<MigrationStatus, MigrationError> {
    let mut query = Vec::new();
    if spec.overwrite {
        query.push("overwrite=true");
    }
    if spec.no_ttl {
        query.push("no_ttl=true");
    }
    let mut url = format!("{}{PATH}", endpoint.trim_end_matches('/'));
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let failed = |e: String| MigrationError::Failed(format!("POST {url}: {e}"));
    // reqwest is built without a crypto provider; ring is the process's (one installed is kept).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client =
        reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| failed(e.to_string()))?;
    let resp = client.post(&url).send().await.map_err(|e| failed(e.to_string()))?;
    let code = resp.status();
    let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
    if code.is_success() {
        let done: Converted =
            serde_json::from_slice(&body).map_err(|e| failed(format!("unreadable answer: {e}")))?;
        let with_ttl = done.written.iter().filter(|(_, lease)| *lease != 0).count();
        return Ok(MigrationStatus {
            revision: done.revision,
            keys: done.written.len() as i64,
            keys_with_ttl: with_ttl as i64,
            leases: done.leases as i64,
            unchanged: done.unchanged as i64,
            time: Time(Timestamp::now()),
        });
    }
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = error["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {code}: {}", String::from_utf8_lossy(&body).trim()));
    // 409: existing v3 keys; 401: auth enabled. Both stay so until someone changes something.
    if code.as_u16() == 409 || code.as_u16() == 401 {
        Err(MigrationError::Refused(message))
    } else {
        Err(failed(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: &str, reason: &str, generation: i64) -> Condition {
        Condition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn runs_once_when_settled_and_never_again() {
        let spec = MigrationSpec::default();
        assert_eq!(decide(None, &[], Some(1), true), Decision::Nothing);
        assert_eq!(decide(Some(&spec), &[], Some(1), false), Decision::Wait);
        assert_eq!(decide(Some(&spec), &[], Some(1), true), Decision::Run);
        let waiting = cond("False", "Waiting", 1);
        assert_eq!(decide(Some(&spec), &[waiting], Some(1), true), Decision::Run);
        // Done is final: not for a new generation, not with the spec removed, not unsettled.
        let done = cond("True", "Migrated", 1);
        for (s, g, settled) in [(Some(&spec), 1, true), (Some(&spec), 2, true), (None, 3, false)] {
            assert_eq!(
                decide(s, std::slice::from_ref(&done), Some(g), settled),
                Decision::Keep(done.clone())
            );
        }
    }

    #[test]
    fn a_refusal_waits_for_a_new_generation_and_a_failure_is_retried() {
        let spec = MigrationSpec { overwrite: true, ..Default::default() };
        let refused = cond("False", "Refused", 4);
        assert_eq!(
            decide(Some(&spec), std::slice::from_ref(&refused), Some(4), true),
            Decision::Keep(refused.clone())
        );
        assert_eq!(
            decide(Some(&spec), std::slice::from_ref(&refused), Some(5), true),
            Decision::Run
        );
        // Removing spec.migration drops a refusal (nothing was converted).
        assert_eq!(decide(None, &[refused], Some(5), true), Decision::Nothing);
        let failed = cond("False", "Failed", 4);
        assert_eq!(decide(Some(&spec), &[failed], Some(4), true), Decision::Run);
    }

    #[test]
    fn conditions_say_what_happened_and_keep_their_transition_time() {
        let now = Timestamp::from_second(1_000).unwrap();
        let done = MigrationStatus {
            revision: 12,
            keys: 3,
            keys_with_ttl: 1,
            leases: 1,
            unchanged: 0,
            time: Time(now),
        };
        let c = condition(Some(&Ok(done)), &[], Some(2), now);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Migrated"));
        assert_eq!(
            c.message,
            "converted 3 v2 keys into v3 keys at revision 12 (1 with a TTL, in 1 leases; 0 already converted)"
        );
        assert_eq!(c.observed_generation, Some(2));
        let waiting = condition(None, &[], Some(2), now);
        assert_eq!((waiting.status.as_str(), waiting.reason.as_str()), ("False", "Waiting"));
        let later = Timestamp::from_second(2_000).unwrap();
        let refused = Err(MigrationError::Refused("refusing to overwrite".into()));
        let r = condition(Some(&refused), std::slice::from_ref(&waiting), Some(2), later);
        assert_eq!(r.reason, "Refused");
        assert_eq!(r.last_transition_time, waiting.last_transition_time, "still False");
    }

    #[test]
    fn an_announced_call_whose_answer_was_lost_is_resumed_and_recorded_once() {
        let spec = MigrationSpec { overwrite: true, ..Default::default() };
        let now = Timestamp::from_second(1_000).unwrap();
        let converting = announced(&[], Some(3), now);
        assert_eq!((converting.status.as_str(), converting.reason.as_str()), ("False", CONVERTING));
        let previous = std::slice::from_ref(&converting);
        assert_eq!(decide(Some(&spec), previous, Some(3), true), Decision::Resume);
        assert_eq!(decide(Some(&spec), previous, Some(3), false), Decision::Wait);
        // The store had converted: every key found converted, recorded as that call's result.
        let found = MigrationStatus {
            revision: 40,
            keys: 0,
            keys_with_ttl: 0,
            leases: 0,
            unchanged: 3,
            time: Time(now),
        };
        let done = resumed(&Ok(found.clone()), previous, Some(3), now);
        assert_eq!((done.status.as_str(), done.reason.as_str()), ("True", "Migrated"));
        assert!(done.message.starts_with("converted by a call whose answer was lost"), "{done:?}");
        assert!(done.message.contains("3 v2 keys found converted"), "{}", done.message);
        // ... and it is final, like any Migrated=True.
        assert_eq!(
            decide(Some(&spec), std::slice::from_ref(&done), Some(3), true),
            Decision::Keep(done.clone())
        );
        // The store had not converted: this call did, recorded as usual.
        let now_done = MigrationStatus { keys: 3, unchanged: 0, ..found };
        let c = resumed(&Ok(now_done), previous, Some(3), now);
        assert!(c.message.starts_with("converted 3 v2 keys"), "{}", c.message);
        // Still unknown: stays Converting (resumed again, never a plain run with overwrite).
        let failed = Err(MigrationError::Failed("connection refused".into()));
        let c = resumed(&failed, previous, Some(3), now);
        assert_eq!(c.reason, CONVERTING);
        assert_eq!(decide(Some(&spec), &[c], Some(3), true), Decision::Resume);
        // Differences: reported as a refusal, kept until the spec changes.
        let refused = Err(MigrationError::Refused("refusing to overwrite 1 existing".into()));
        let c = resumed(&refused, previous, Some(3), now);
        assert_eq!(c.reason, "Refused");
        assert!(c.message.contains("interrupted by an operator restart"), "{}", c.message);
        assert_eq!(decide(Some(&spec), std::slice::from_ref(&c), Some(3), true), Decision::Keep(c));
    }

    #[test]
    fn the_spec_uses_the_flag_names() {
        let s: MigrationSpec =
            serde_json::from_value(serde_json::json!({"noTTL": true, "overwrite": true})).unwrap();
        assert_eq!(s, MigrationSpec { no_ttl: true, overwrite: true });
        let empty: MigrationSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, MigrationSpec::default());
    }
}
