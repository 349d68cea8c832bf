//! Permission matching, exactly as etcd's `range_perm_cache.go` over its `adt` interval tree.
//!
//! A role's permission covers a single key (`range_end` empty), the range `[key, range_end)`,
//! or every key from `key` on (`range_end` is "\0"). A request on one key is allowed if any
//! permission of the right type contains the key; a request on a range is allowed only if the
//! permissions of the right type together cover the whole range, without a gap.
//!
//! Pure functions over `authpb.Permission`: no storage, no locks.

use std::cmp::Ordering;

use crate::pb::authpb::permission::Type as PermType;
use crate::pb::authpb::Permission;

/// What a request needs on a key or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Range, watch, txn compares, `prev_kv`.
    Read,
    /// Put, delete, lease revoke of attached keys.
    Write,
}

impl Access {
    /// Whether a permission of type `t` grants this access.
    fn granted_by(self, t: i32) -> bool {
        match PermType::try_from(t) {
            Ok(PermType::Readwrite) => true,
            Ok(PermType::Read) => self == Access::Read,
            Ok(PermType::Write) => self == Access::Write,
            Err(_) => false,
        }
    }
}

/// Compares two interval bounds where the empty byte string stands for +∞ (etcd's
/// `BytesAffineComparable`).
fn cmp_bound(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

/// The half-open key interval `[begin, end)`; an empty `end` means unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    /// The interval holding exactly `key`: `[key, key + "\0")` (etcd's `NewBytesAffinePoint`).
    fn point(key: &[u8]) -> Interval {
        let mut end = key.to_vec();
        end.push(0);
        Interval { begin: key.to_vec(), end }
    }

    /// `[key, range_end)`, with "\0" as the end meaning every key from `key` on.
    fn range(key: &[u8], range_end: &[u8]) -> Interval {
        let end = if range_end == [0] { Vec::new() } else { range_end.to_vec() };
        Interval { begin: key.to_vec(), end }
    }

    /// What a stored permission covers.
    fn of(perm: &Permission) -> Interval {
        if perm.range_end.is_empty() {
            Interval::point(&perm.key)
        } else {
            Interval::range(&perm.key, &perm.range_end)
        }
    }

    fn overlaps(&self, other: &Interval) -> bool {
        cmp_bound(&self.begin, &other.end) == Ordering::Less
            && cmp_bound(&other.begin, &self.end) == Ordering::Less
    }
}

/// Whether `perms` grant `access` on `key` alone (`range_end` empty) or on the range
/// `[key, range_end)` (`range_end` "\0": every key from `key` on).
pub fn permits<'a>(
    perms: impl IntoIterator<Item = &'a Permission>,
    key: &[u8],
    range_end: &[u8],
    access: Access,
) -> bool {
    let granted = perms.into_iter().filter(|p| access.granted_by(p.perm_type)).map(Interval::of);
    if range_end.is_empty() {
        let point = Interval::point(key);
        return granted.into_iter().any(|iv| iv.overlaps(&point));
    }
    let wanted = Interval::range(key, range_end);
    let mut hits: Vec<Interval> = granted.filter(|iv| iv.overlaps(&wanted)).collect();
    hits.sort_by(|a, b| cmp_bound(&a.begin, &b.begin));
    let Some(first) = hits.first() else { return false };
    if cmp_bound(&first.begin, &wanted.begin) == Ordering::Greater {
        return false;
    }
    let mut covered_to = first.end.clone();
    for iv in &hits[1..] {
        if cmp_bound(&covered_to, &iv.begin) == Ordering::Less {
            return false;
        }
        if cmp_bound(&iv.end, &covered_to) == Ordering::Greater {
            covered_to = iv.end.clone();
        }
    }
    cmp_bound(&covered_to, &wanted.end) != Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermType, key: &str, end: &str) -> Permission {
        Permission { perm_type: t as i32, key: key.into(), range_end: end.into() }
    }

    fn read(perms: &[Permission], key: &str, end: &str) -> bool {
        permits(perms, key.as_bytes(), end.as_bytes(), Access::Read)
    }

    fn write(perms: &[Permission], key: &str, end: &str) -> bool {
        permits(perms, key.as_bytes(), end.as_bytes(), Access::Write)
    }

    #[test]
    fn single_key_permission() {
        let perms = [perm(PermType::Read, "foo", "")];
        assert!(read(&perms, "foo", ""));
        assert!(!read(&perms, "fo", ""));
        assert!(!read(&perms, "foo1", ""));
        assert!(!write(&perms, "foo", ""));
        // A range holding only "foo" is covered; one reaching past it is not.
        assert!(read(&perms, "foo", "foo\0"));
        assert!(!read(&perms, "foo", "fop"));
        // `get foo --prefix` ranges over [foo, fop): more than the key.
        assert!(!read(&perms, "foo", "\0"));
    }

    #[test]
    fn range_permission() {
        let perms = [perm(PermType::Write, "a", "c")];
        assert!(write(&perms, "a", ""));
        assert!(write(&perms, "b", ""));
        assert!(write(&perms, "bzzz", ""));
        assert!(!write(&perms, "c", ""));
        assert!(write(&perms, "a", "c"));
        assert!(write(&perms, "a1", "b"));
        assert!(!write(&perms, "a", "d"));
        assert!(!write(&perms, "0", "b"));
        assert!(!read(&perms, "a", ""));
    }

    #[test]
    fn prefix_permission() {
        // `role grant-permission --prefix ro read pre/` stores [pre/, pre0).
        let perms = [perm(PermType::Read, "pre/", "pre0")];
        assert!(read(&perms, "pre/", ""));
        assert!(read(&perms, "pre/x/y", ""));
        assert!(read(&perms, "pre/", "pre0"));
        assert!(read(&perms, "pre/a", "pre/b"));
        assert!(!read(&perms, "pre", ""));
        assert!(!read(&perms, "p", "q"));
        assert!(!read(&perms, "pre/", "\0"));
    }

    #[test]
    fn from_key_permission() {
        let perms = [perm(PermType::Readwrite, "zzz", "\0")];
        assert!(read(&perms, "zzz", ""));
        assert!(write(&perms, "zzzz", ""));
        assert!(read(&perms, "zzzz", "\0"));
        assert!(read(&perms, "zzz", "\u{7f}"));
        assert!(!read(&perms, "zz", ""));
        assert!(!read(&perms, "a", "\0"));
        // Every key: `get "" --prefix` asks for ["\0", ∞).
        let all = [perm(PermType::Read, "\0", "\0")];
        assert!(read(&all, "\0", "\0"));
        assert!(read(&all, "anything", ""));
    }

    #[test]
    fn ranges_are_covered_by_the_union_of_permissions() {
        let perms = [
            perm(PermType::Read, "a", "c"),
            perm(PermType::Readwrite, "c", "e"),
            perm(PermType::Read, "d", "f"),
            perm(PermType::Read, "g", "\0"),
        ];
        assert!(read(&perms, "a", "f"));
        assert!(read(&perms, "b", "e"));
        // [f, g) is not granted.
        assert!(!read(&perms, "a", "h"));
        assert!(!read(&perms, "e", "\0"));
        assert!(read(&perms, "g", "\0"));
        assert!(read(&perms, "h", "z"));
        // Only [c, e) is writable.
        assert!(write(&perms, "c", "e"));
        assert!(!write(&perms, "b", "d"));
    }

    #[test]
    fn nothing_is_permitted_without_permissions() {
        assert!(!read(&[], "a", ""));
        assert!(!read(&[], "a", "b"));
        assert!(!write(&[], "a", "\0"));
    }
}
