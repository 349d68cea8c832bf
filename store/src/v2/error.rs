//! etcd's v2 errors (`v2error`): code, message, cause and the store index, as JSON.

use serde::{Deserialize, Serialize};

/// A v2 error as etcd 3.4 writes it: `{"errorCode":100,"message":"Key not found",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Error {
    /// etcd's error code (100 key not found, 101 compare failed, ...).
    #[serde(rename = "errorCode")]
    pub code: u32,
    /// The code's fixed text.
    pub message: String,
    /// What the error is about (a path, the failed comparison, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cause: String,
    /// The store's index when the error happened (0 for a malformed request).
    pub index: u64,
}

/// Key not found.
pub const KEY_NOT_FOUND: u32 = 100;
/// Compare failed.
pub const TEST_FAILED: u32 = 101;
/// Not a file.
pub const NOT_FILE: u32 = 102;
/// Not a directory.
pub const NOT_DIR: u32 = 104;
/// Key already exists.
pub const NODE_EXIST: u32 = 105;
/// Root is read only.
pub const ROOT_RONLY: u32 = 107;
/// Directory not empty.
pub const DIR_NOT_EMPTY: u32 = 108;
/// PrevValue is Required in POST form.
pub const PREV_VALUE_REQUIRED: u32 = 201;
/// The given TTL in POST form is not a number.
pub const TTL_NAN: u32 = 202;
/// The given index in POST form is not a number.
pub const INDEX_NAN: u32 = 203;
/// Invalid field.
pub const INVALID_FIELD: u32 = 209;
/// Invalid POST form.
pub const INVALID_FORM: u32 = 210;
/// Value provided on refresh.
pub const REFRESH_VALUE: u32 = 211;
/// A TTL must be provided on refresh.
pub const REFRESH_TTL_REQUIRED: u32 = 212;
/// Raft Internal Error.
pub const RAFT_INTERNAL: u32 = 300;
/// The event in requested index is outdated and cleared.
pub const EVENT_INDEX_CLEARED: u32 = 401;

/// etcd's message for a code.
fn message(code: u32) -> &'static str {
    match code {
        KEY_NOT_FOUND => "Key not found",
        TEST_FAILED => "Compare failed",
        NOT_FILE => "Not a file",
        NOT_DIR => "Not a directory",
        NODE_EXIST => "Key already exists",
        ROOT_RONLY => "Root is read only",
        DIR_NOT_EMPTY => "Directory not empty",
        PREV_VALUE_REQUIRED => "PrevValue is Required in POST form",
        TTL_NAN => "The given TTL in POST form is not a number",
        INDEX_NAN => "The given index in POST form is not a number",
        INVALID_FIELD => "Invalid field",
        INVALID_FORM => "Invalid POST form",
        REFRESH_VALUE => "Value provided on refresh",
        REFRESH_TTL_REQUIRED => "A TTL must be provided on refresh",
        RAFT_INTERNAL => "Raft Internal Error",
        EVENT_INDEX_CLEARED => "The event in requested index is outdated and cleared",
        _ => "",
    }
}

impl V2Error {
    /// The error `code` about `cause` at store index `index`.
    pub fn new(code: u32, cause: impl Into<String>, index: u64) -> V2Error {
        V2Error { code, message: message(code).to_string(), cause: cause.into(), index }
    }

    /// The HTTP status etcd answers the error with (400 unless listed).
    pub fn status(&self) -> u16 {
        match self.code {
            KEY_NOT_FOUND => 404,
            NOT_FILE | DIR_NOT_EMPTY => 403,
            110 => 401,
            TEST_FAILED | NODE_EXIST => 412,
            RAFT_INTERNAL | 301 => 500,
            _ => 400,
        }
    }

    /// The body etcd writes: the JSON and a newline.
    pub fn body(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl std::fmt::Display for V2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({}) [{}]", self.code, self.message, self.cause, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_etcds() {
        let e = V2Error::new(KEY_NOT_FOUND, "/foo", 3);
        assert_eq!(
            e.body(),
            "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/foo\",\"index\":3}\n"
        );
        assert_eq!(e.status(), 404);
        assert_eq!(V2Error::new(NOT_DIR, "/a", 1).status(), 400);
    }
}
