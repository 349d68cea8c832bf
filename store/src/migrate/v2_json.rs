//! The v2 keys API's JSON, and the conversion of a v2 tree into v3 keys.

use serde::Deserialize;

/// A v2 node: a key with a value, or a directory with child nodes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Node {
    /// The full path, e.g. `/dir/key` (absent for the root directory).
    #[serde(default)]
    pub key: String,
    /// The value (keys only).
    #[serde(default)]
    pub value: Option<String>,
    /// Whether this is a directory.
    #[serde(default)]
    pub dir: bool,
    /// Children of a directory listed recursively.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Seconds left before the key expires, for a key with a TTL.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// The v2 index of the last change.
    #[serde(rename = "modifiedIndex", default)]
    pub modified_index: u64,
    /// The v2 index of the creation.
    #[serde(rename = "createdIndex", default)]
    pub created_index: u64,
}

/// A v2 response: a read, or a change (also what a watch returns).
#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    /// `get`, `set`, `create`, `update`, `compareAndSwap`, `delete`, `compareAndDelete`,
    /// `expire`.
    pub action: String,
    /// The node read or changed.
    pub node: Node,
    /// The node before the change.
    #[serde(rename = "prevNode", default)]
    pub prev_node: Option<Node>,
}

/// A v2 error body.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    /// etcd's v2 error code (100 key not found, 401 event index cleared, ...).
    #[serde(rename = "errorCode")]
    pub error_code: u32,
    /// Its text.
    pub message: String,
    /// What it is about.
    #[serde(default)]
    pub cause: String,
    /// The store's index when it happened.
    #[serde(default)]
    pub index: u64,
}

/// A v2 key as a v3 key-value: path → key, value kept, TTL in seconds if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Key {
    /// The v2 path, used as the v3 key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Remaining TTL in seconds, when the key expires.
    pub ttl: Option<i64>,
}

/// Every key (not directory) under `node`, in tree order.
pub fn flatten(node: &Node, out: &mut Vec<V3Key>) {
    if node.dir {
        for child in &node.nodes {
            flatten(child, out);
        }
    } else if let Some(v3) = to_v3(node) {
        out.push(v3);
    }
}

/// The v3 key for one v2 key node (`None` for a directory).
pub fn to_v3(node: &Node) -> Option<V3Key> {
    if node.dir {
        return None;
    }
    Some(V3Key {
        key: node.key.as_bytes().to_vec(),
        value: node.value.clone().unwrap_or_default().into_bytes(),
        ttl: node.ttl.filter(|t| *t > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_becomes_keys_without_directories() {
        let body = r#"{"action":"get","node":{"dir":true,"nodes":[
            {"key":"/foo","value":"bar","modifiedIndex":4,"createdIndex":4},
            {"key":"/d","dir":true,"nodes":[
                {"key":"/d/x","value":"1","expiration":"2026-12-03T15:04:56Z","ttl":30,
                 "modifiedIndex":6,"createdIndex":6},
                {"key":"/d/e","dir":true,"modifiedIndex":7,"createdIndex":7}],
             "modifiedIndex":5,"createdIndex":5}]}}"#;
        let r: Response = serde_json::from_str(body).unwrap();
        let mut keys = Vec::new();
        flatten(&r.node, &mut keys);
        assert_eq!(
            keys,
            vec![
                V3Key { key: b"/foo".to_vec(), value: b"bar".to_vec(), ttl: None },
                V3Key { key: b"/d/x".to_vec(), value: b"1".to_vec(), ttl: Some(30) },
            ]
        );
    }
}
