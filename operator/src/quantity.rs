//! Kubernetes storage quantities (`1Gi`, `500M`, `1.5Gi`) as bytes, so the operator can tell
//! whether a member volume is smaller than `spec.storage.size` (the apiserver compares them
//! the same way in the CEL rule that refuses shrinking).

/// The number of bytes a quantity stands for, rounded up; `None` for anything that is not a
/// plain non-negative storage quantity (a negative number, an unknown suffix, an overflow).
pub fn bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || fraction.len() > 18 {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let scaled: u128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let scale = 10u128.pow(fraction.len() as u32);
    let value = scaled.checked_mul(multiplier)?.div_ceil(scale);
    u64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes() {
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("512Mi"), Some(512 << 20));
        assert_eq!(bytes("2G"), Some(2_000_000_000));
        assert_eq!(bytes("100"), Some(100));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("0.1k"), Some(100));
        assert_eq!(bytes("1.0001k"), Some(1001), "rounded up");
        assert!(bytes("2Gi") > bytes("1.9Gi"));
    }

    #[test]
    fn anything_else_is_refused() {
        for q in ["", "Gi", "-1Gi", "1gi", "1.2.3", "1e3", "1Zi", "99999999999999999999Ei"] {
            assert_eq!(bytes(q), None, "{q}");
        }
    }
}
