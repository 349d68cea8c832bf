//! What a v2 client sees: events and nodes (etcd's `Event` and `NodeExtern`), with Go's
//! JSON rules (empty fields omitted) and Go's time format for expirations.

use serde::{Deserialize, Serialize};

/// A node as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeExtern {
    /// The path (empty for the keys root once the prefix is trimmed, then omitted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// A key's value (absent for directories and for delete events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether it is a directory.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dir: bool,
    /// When it expires (RFC 3339 with nanoseconds, UTC), for a node with a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// Seconds left, rounded up, for a node with a TTL.
    #[serde(default, skip_serializing_if = "is_zero_i")]
    pub ttl: i64,
    /// A directory's children (listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeExtern>,
    /// The index of its last change.
    #[serde(rename = "modifiedIndex", default, skip_serializing_if = "is_zero_u")]
    pub modified_index: u64,
    /// The index of its creation.
    #[serde(rename = "createdIndex", default, skip_serializing_if = "is_zero_u")]
    pub created_index: u64,
}

/// One change (or a read): what a write answers and what watchers receive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `get`, `set`, `create`, `update`, `compareAndSwap`, `delete`, `compareAndDelete`,
    /// `expire`.
    pub action: String,
    /// The node read or changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeExtern>,
    /// The node before the change.
    #[serde(rename = "prevNode", default, skip_serializing_if = "Option::is_none")]
    pub prev_node: Option<NodeExtern>,
    /// A TTL refresh: kept in the history but never sent to watchers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub refresh: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u(v: &u64) -> bool {
    *v == 0
}

impl Event {
    /// An event of `action` on `key` at `modified`, for a node created at `created`.
    pub fn new(action: &str, key: &str, modified: u64, created: u64) -> Event {
        Event {
            action: action.to_string(),
            node: Some(NodeExtern {
                key: key.to_string(),
                modified_index: modified,
                created_index: created,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The index the event happened at (its node's modified index).
    pub fn index(&self) -> u64 {
        self.node.as_ref().map(|n| n.modified_index).unwrap_or(0)
    }

    /// The changed node's path.
    pub fn key(&self) -> &str {
        self.node.as_ref().map(|n| n.key.as_str()).unwrap_or("")
    }

    /// etcd's `IsCreated`: answered with 201.
    pub fn is_created(&self) -> bool {
        self.action == "create" || (self.action == "set" && self.prev_node.is_none())
    }

    /// The event as a client sees it: paths without the store prefix (`/1`), and no
    /// `refresh` mark (etcd keeps it for its history only).
    pub fn trimmed(mut self, prefix: &str) -> Event {
        self.refresh = false;
        if let Some(n) = self.node.as_mut() {
            n.trim(prefix);
        }
        if let Some(n) = self.prev_node.as_mut() {
            n.trim(prefix);
        }
        self
    }

    /// The JSON line etcd's encoder writes.
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl NodeExtern {
    fn trim(&mut self, prefix: &str) {
        if let Some(rest) = self.key.strip_prefix(prefix) {
            self.key = rest.to_string();
        }
        for child in &mut self.nodes {
            child.trim(prefix);
        }
    }

    /// Fills `expiration` and `ttl` for a node expiring at `expire` (unix ns), seen at `now`.
    pub fn set_expiry(&mut self, expire: Option<i64>, now: i64) {
        let (expiration, ttl) = expiration_and_ttl(expire, now);
        self.expiration = expiration;
        self.ttl = ttl;
    }
}

/// etcd's `expirationAndTTL`: the expiry time and the seconds left rounded up.
pub fn expiration_and_ttl(expire: Option<i64>, now: i64) -> (Option<String>, i64) {
    let Some(at) = expire else {
        return (None, 0);
    };
    let left = at - now;
    let mut ttl = left / 1_000_000_000;
    if left % 1_000_000_000 > 0 {
        ttl += 1;
    }
    (Some(rfc3339_nano(at)), ttl)
}

/// Go's `time.RFC3339Nano` of a UTC time given in unix nanoseconds (trailing zeros of the
/// fraction dropped, as Go's JSON encoding of a `time.Time` does).
pub fn rfc3339_nano(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s =
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, (sod % 3600) / 60, sod % 60);
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Reads Go's `time.RFC3339Nano` (any zone offset) back into unix nanoseconds; `None` for
/// text that is not such a time or lies outside what unix nanoseconds in an `i64` can hold
/// (years 1678–2262), Go's zero time `0001-01-01T00:00:00Z` among them.
pub fn parse_rfc3339_nano(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0i64;
    if b.get(at) == Some(&b'.') {
        let digits = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(at + 1, digits)? * 10i64.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset = match s.get(at..)? {
        "Z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) => {
            let secs = num(at + 1, 2)? * 3600 + num(at + 4, 2)? * 60;
            if zone.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// (year, month, day) in the proleptic Gregorian calendar → days since 1970-01-01; the
/// inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Now, in unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ttls_are_gos() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        for t in [0, 1_796_400_000_120_000_000, 1_796_339_659_108_518_086, -86_400_000_000_000] {
            assert_eq!(parse_rfc3339_nano(&rfc3339_nano(t)), Some(t), "{t}");
        }
        assert_eq!(
            parse_rfc3339_nano("2026-12-04T17:00:00.12+01:00"),
            Some(1_796_400_000_120_000_000)
        );
        assert_eq!(parse_rfc3339_nano("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_nano("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_nano("yesterday"), None);
        assert_eq!(rfc3339_nano(1_796_400_000_120_000_000), "2026-12-04T16:00:00.12Z");
        assert_eq!(rfc3339_nano(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        let (_, ttl) = expiration_and_ttl(Some(10_500_000_000), 0);
        assert_eq!(ttl, 11);
        let (_, ttl) = expiration_and_ttl(Some(10_000_000_000), 0);
        assert_eq!(ttl, 10);
    }

    #[test]
    fn json_omits_empty_fields() {
        let mut e = Event::new("set", "/1/foo", 4, 4);
        e.node.as_mut().unwrap().value = Some("bar".into());
        assert_eq!(
            e.trimmed("/1").line(),
            "{\"action\":\"set\",\"node\":{\"key\":\"/foo\",\"value\":\"bar\",\"modifiedIndex\":4,\"createdIndex\":4}}\n"
        );
    }
}
