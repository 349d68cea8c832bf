//! Kubernetes' `$(VAR)` expansion, as applied to a container's `command`, `args` and `env` values.
//!
//! The rules (from the Pod API reference): `$(NAME)` is replaced by the variable's value when
//! `NAME` is defined, and left exactly as written when it is not; `$$` is an escaped `$`, so
//! `$$(NAME)` yields the literal `$(NAME)`; any other `$` is kept. Pure: no environment is read.

/// Expands `$(NAME)` references in `input` with `lookup`, following Kubernetes' rules.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            // `$$` is an escaped dollar.
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    // An unterminated reference is kept as written.
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Expands `input` against an ordered list of `(name, value)` pairs; a later pair with the same
/// name wins, as a later `env` entry overrides an earlier one.
pub fn expand_with(input: &str, vars: &[(String, String)]) -> String {
    expand(input, |name| vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("POD_IP".into(), "127.1.2.3".into()),
            ("NAME".into(), "old".into()),
            ("NAME".into(), "oxcd-0".into()),
            ("EMPTY".into(), String::new()),
        ]
    }

    #[test]
    fn defined_variables_are_replaced() {
        assert_eq!(
            expand_with("--listen-client-urls=http://$(POD_IP):2379", &vars()),
            "--listen-client-urls=http://127.1.2.3:2379"
        );
        assert_eq!(expand_with("$(NAME)$(NAME)", &vars()), "oxcd-0oxcd-0");
        assert_eq!(expand_with("a$(EMPTY)b", &vars()), "ab");
    }

    #[test]
    fn undefined_references_are_kept() {
        assert_eq!(expand_with("$(MISSING)-x", &vars()), "$(MISSING)-x");
        assert_eq!(expand_with("$()", &vars()), "$()");
    }

    #[test]
    fn escapes_and_stray_dollars() {
        assert_eq!(expand_with("$$(POD_IP)", &vars()), "$(POD_IP)");
        assert_eq!(expand_with("$$$(POD_IP)", &vars()), "$127.1.2.3");
        assert_eq!(expand_with("cost: 5$", &vars()), "cost: 5$");
        assert_eq!(expand_with("$HOME $x", &vars()), "$HOME $x");
        assert_eq!(expand_with("$(POD_IP", &vars()), "$(POD_IP");
        assert_eq!(expand_with("no refs", &vars()), "no refs");
        assert_eq!(expand_with("é$(NAME)ü", &vars()), "éoxcd-0ü");
    }
}
