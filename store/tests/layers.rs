//! The layering of `store/src`, checked on every test run (see ARCHITECTURE.md).
//!
//! Each top-level module (a folder or a file of `store/src`) has a layer; code may use
//! (`crate::…`) only its own module, modules of lower layers, and the foundation (error
//! type, protobuf types, flags, metrics, versions, raft's type definitions), which itself
//! uses nothing above it. So there is no import cycle between layers, and a handler cannot
//! reach around the member into raft or RocksDB. Comment lines are skipped (docs may name
//! any module). Fast: it only reads the sources.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top to bottom: a module may use the ones after it, never the ones before it.
const LAYERS: &[&str] = &[
    // Edge: the binary, listeners, client-facing services, offline tools.
    "main",
    "serve",
    "tools",
    "http",
    "pprof",
    // etcd's v2 HTTP API, oxcd's migration endpoint, the leader's v2 TTL expiry.
    "v2_api",
    "api",
    // The member: the one interface the edge talks to, and its background roles.
    "member",
    // v2 migration (reads etcd's raft files) and etcd snapshot files (bbolt): beside the
    // request path, above raft.
    "migrate",
    "snapshot_file",
    // Consensus, then the deterministic apply of committed commands.
    "raft",
    "apply",
    // The v2 keys store (`--enable-v2`), applied beside the v3 keys.
    "v2",
    // Applied state, and the watch path fed by apply.
    "auth",
    "lease",
    "cluster",
    "watch",
    "mvcc",
    // RocksDB.
    "storage",
];

/// Usable from anywhere; they use nothing but each other.
const FOUNDATION: &[&str] = &[
    "lib",
    "error",
    "Error",
    "Result",
    "pb",
    "config",
    "metrics",
    "version",
    "logging",
    "tls",
    "raft::types",
];

/// The client-facing edge and the only paths below it each may use: the member's narrow
/// interface (`member::handle`: propose, reads, watch, leases, auth, status, membership), and
/// for the v2 HTTP API the v2 store's protocol types (never `v2::store`, the store itself).
/// So a handler cannot reach the member's wiring (`member::server`), raft, the applier, the
/// stores or RocksDB, even through a lower module that would re-export them. (The peer service
/// in `serve/` does drive raft: it is raft's transport.)
const EDGE: &[(&str, &[&str])] = &[
    ("api", &["member::handle"]),
    ("http", &["member::handle"]),
    ("pprof", &[]),
    (
        "v2_api",
        &[
            "member::handle",
            "v2::command",
            "v2::convert",
            "v2::error",
            "v2::event",
            "v2::path",
            "v2::KEYS_PREFIX",
        ],
    ),
];

/// Handles of lower layers; no edge code may call a method of these names (belt and braces
/// with `EDGE`: the member's interface has none of them).
const EDGE_FORBIDDEN_CALLS: &[&str] = &[
    ".storage()",
    ".raft()",
    ".applier()",
    ".state_machine()",
    ".mvcc()",
    ".hub()",
    ".lessor()",
    ".auth()",
    ".cluster()",
    ".v2()",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read store/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to: its top-level folder or file name under `src`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty").as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    if name == "raft" && rel.ends_with("types.rs") {
        return "raft::types".into();
    }
    name
}

/// Every path `code` names after `crate::`, as its first two segments (`member::handle`,
/// `pb`); a grouped `crate::{…}` is returned as `{` so the caller can refuse it (it would
/// hide what it imports from this line-based check).
fn paths(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    let mut out = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if rest.starts_with('{') {
                out.insert("{".to_string());
                continue;
            }
            let end = ident(rest);
            let mut path = rest[..end].to_string();
            if let Some(tail) = rest[end..].strip_prefix("::") {
                let second = &tail[..ident(tail)];
                if !second.is_empty() {
                    path = format!("{path}::{second}");
                }
            }
            if !path.is_empty() {
                out.insert(path);
            }
        }
    }
    out
}

/// The modules `code` names as `crate::x` (or `crate::raft::types`).
fn uses(code: &str) -> BTreeSet<String> {
    paths(code)
        .into_iter()
        .map(|p| match p.split_once("::") {
            Some(("raft", "types")) => p,
            Some((first, _)) => first.to_string(),
            None => p,
        })
        .collect()
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

#[test]
fn layers_only_look_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let code = std::fs::read_to_string(file).expect("read source");
        let foundation = FOUNDATION.contains(&module.as_str());
        let Some(mine) = rank(&module).or(foundation.then_some(usize::MAX)) else {
            violations.push(format!("{}: module {module} has no layer", file.display()));
            continue;
        };
        for used in uses(&code) {
            if used == module || FOUNDATION.contains(&used.as_str()) {
                continue;
            }
            let ok = match rank(&used) {
                Some(theirs) => !foundation && theirs > mine,
                None => false,
            };
            if !ok {
                violations.push(format!("{}: {module} uses crate::{used}", file.display()));
            }
        }
        if let Some((_, allowed)) = EDGE.iter().find(|(edge, _)| *edge == module) {
            for path in paths(&code) {
                let first = path.split("::").next().unwrap_or_default();
                let ok = first == module
                    || FOUNDATION.contains(&first)
                    || allowed.iter().any(|a| path == *a);
                if !ok {
                    violations.push(format!(
                        "{}: the edge uses crate::{path} (only {allowed:?} and the foundation)",
                        file.display()
                    ));
                }
            }
            for call in EDGE_FORBIDDEN_CALLS {
                if code.lines().any(|l| !l.trim_start().starts_with("//") && l.contains(call)) {
                    violations.push(format!("{}: the API calls {call}", file.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn every_module_is_placed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    for m in &modules {
        assert!(
            rank(m).is_some() || FOUNDATION.contains(&m.as_str()),
            "store/src/{m} is in no layer: add it to LAYERS or FOUNDATION"
        );
    }
    assert!(uses("use crate::raft::types::Entry; // crate::api").contains("raft::types"));
}

/// The checks themselves catch what they are for: an edge import below the member's
/// interface, a grouped import that would hide one, a lower layer importing an upper one.
#[test]
fn the_checks_catch_violations() {
    let p =
        paths("use crate::member::server::EtcdServer;\nuse crate::{mvcc, pb};\nx(crate::pb::X)");
    assert!(p.contains("member::server"));
    assert!(p.contains("{"));
    assert!(p.contains("pb::X"));
    let edge_api = EDGE.iter().find(|(m, _)| *m == "api").expect("api is edge").1;
    assert!(!edge_api.contains(&"member::server"));
    assert!(uses("use crate::storage::Storage;").contains("storage"));
    assert!(rank("api") < rank("member") && rank("member") < rank("raft"));
    assert!(rank("raft") < rank("storage"));
}
