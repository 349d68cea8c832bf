//! When a scheduled snapshot is due, what it is called, and which snapshots retention prunes.
//! Pure functions of the schedule, the clock and the existing snapshots.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

/// The next time `schedule` (cron, UTC) fires strictly after `after`.
pub fn next_after(schedule: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let cron =
        Cron::from_str(schedule).map_err(|e| format!("invalid cron schedule {schedule:?}: {e}"))?;
    cron.find_next_occurrence(&after, false)
        .map_err(|e| format!("cron schedule {schedule:?} never fires: {e}"))
}

/// The scheduled time that is due at `now`, if any: the first firing after the last scheduled
/// snapshot was created (or after the cluster was, before the first one). Firings missed while
/// no operator ran collapse into one.
pub fn due(
    schedule: &str,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    let next = next_after(schedule, last)?;
    Ok((next <= now).then_some(next))
}

/// The name of the snapshot of `cluster` scheduled at `at`: deterministic, so two operators
/// (or a retried create) cannot make two snapshots of one firing.
pub fn snapshot_name(cluster: &str, at: DateTime<Utc>) -> String {
    format!("{cluster}-{}", at.format("%Y%m%d-%H%M%S"))
}

/// A scheduled snapshot as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Object name.
    pub name: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Its phase (Pending/Running/Succeeded/Failed).
    pub phase: String,
}

/// The snapshots to delete: succeeded ones beyond the `retention` newest, and failed ones
/// except the newest failure (kept to show what went wrong). Running ones are never pruned.
pub fn prune(mut snapshots: Vec<Kept>, retention: usize) -> Vec<String> {
    snapshots.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
    let named = |p: &str| -> Vec<String> {
        snapshots.iter().filter(|s| s.phase == p).map(|s| s.name.clone()).collect()
    };
    let old_ok = named(super::api::phase::SUCCEEDED).into_iter().skip(retention);
    let old_failed = named(super::api::phase::FAILED).into_iter().skip(1);
    old_ok.chain(old_failed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn due_after_the_last_firing() {
        let every_5 = "*/5 * * * *";
        assert_eq!(
            next_after(every_5, t("2026-01-01T10:02:00Z")).unwrap(),
            t("2026-01-01T10:05:00Z")
        );
        // Exactly on a firing: the next one.
        assert_eq!(
            next_after(every_5, t("2026-01-01T10:05:00Z")).unwrap(),
            t("2026-01-01T10:10:00Z")
        );
        assert_eq!(
            due(every_5, t("2026-01-01T10:02:00Z"), t("2026-01-01T10:04:59Z")).unwrap(),
            None
        );
        assert_eq!(
            due(every_5, t("2026-01-01T10:02:00Z"), t("2026-01-01T11:00:00Z")).unwrap(),
            Some(t("2026-01-01T10:05:00Z"))
        );
        // A seconds field is accepted.
        assert_eq!(
            next_after("*/10 * * * * *", t("2026-01-01T10:00:01Z")).unwrap(),
            t("2026-01-01T10:00:10Z")
        );
        let e = next_after("every hour", t("2026-01-01T10:00:00Z")).unwrap_err();
        assert!(e.starts_with("invalid cron schedule \"every hour\""), "{e}");
        assert_eq!(snapshot_name("c", t("2026-01-01T10:05:00Z")), "c-20260101-100500");
    }

    #[test]
    fn retention_keeps_the_newest_successes_and_the_last_failure() {
        let k = |name: &str, minute: u32, phase: &str| Kept {
            name: name.into(),
            created: t(&format!("2026-01-01T10:{minute:02}:00Z")),
            phase: phase.into(),
        };
        let snaps = vec![
            k("a", 1, "Succeeded"),
            k("b", 2, "Failed"),
            k("c", 3, "Succeeded"),
            k("d", 4, "Failed"),
            k("e", 5, "Succeeded"),
            k("f", 6, "Running"),
        ];
        let mut gone = prune(snaps.clone(), 2);
        gone.sort();
        assert_eq!(gone, vec!["a", "b"]);
        assert_eq!(prune(snaps.clone(), 3), vec!["b"]);
        let mut all = prune(snaps, 0);
        all.sort();
        assert_eq!(all, vec!["a", "b", "c", "e"]);
    }
}
