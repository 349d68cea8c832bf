//! proto3 JSON as etcd's gRPC gateway writes and reads it (grpc-gateway's `JSONPb` with
//! `OrigName: true`, `EmitDefaults: false`).
//!
//! Writing: fields in proto field order, under their proto names; default values (0, false,
//! "", empty lists, absent messages) left out; 64-bit integers as decimal strings; bytes as
//! standard base64; enums by name. Reading accepts what jsonpb accepts: proto or camelCase
//! names, 64-bit integers as strings or numbers, enums by name or number.
//!
//! Pure functions over the prost messages; no I/O.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::pb::authpb::permission::Type as PermType;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::response_op::Response as OpResponse;
use crate::pb::etcdserverpb::*;
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::{Event, KeyValue};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A JSON object written field by field, in the order the fields are added.
#[derive(Default)]
pub struct Obj {
    out: String,
}

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj::default()
    }

    fn raw(&mut self, name: &str, json: &str) -> &mut Obj {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        self.out.push_str(&quote(name));
        self.out.push(':');
        self.out.push_str(json);
        self
    }

    /// A 64-bit integer (a string), left out when 0.
    pub fn i64(&mut self, name: &str, v: impl Into<i128>) -> &mut Obj {
        let v = v.into();
        if v != 0 {
            self.raw(name, &format!("\"{v}\""));
        }
        self
    }

    /// A 32-bit integer (a number), left out when 0.
    pub fn i32(&mut self, name: &str, v: i32) -> &mut Obj {
        if v != 0 {
            self.raw(name, &v.to_string());
        }
        self
    }

    /// A 32-bit unsigned integer (a number), left out when 0.
    pub fn u32(&mut self, name: &str, v: u32) -> &mut Obj {
        if v != 0 {
            self.raw(name, &v.to_string());
        }
        self
    }

    /// `true`, or nothing.
    pub fn bool(&mut self, name: &str, v: bool) -> &mut Obj {
        if v {
            self.raw(name, "true");
        }
        self
    }

    /// A string, left out when empty.
    pub fn str(&mut self, name: &str, v: &str) -> &mut Obj {
        if !v.is_empty() {
            self.raw(name, &quote(v));
        }
        self
    }

    /// Bytes (base64), left out when empty.
    pub fn bytes(&mut self, name: &str, v: &[u8]) -> &mut Obj {
        if !v.is_empty() {
            self.raw(name, &quote(&B64.encode(v)));
        }
        self
    }

    /// An enum by name, left out when it is the zero value.
    pub fn enumeration(&mut self, name: &str, number: i32, label: &str) -> &mut Obj {
        if number != 0 {
            self.raw(name, &quote(label));
        }
        self
    }

    /// A nested message, when present.
    pub fn msg(&mut self, name: &str, v: Option<String>) -> &mut Obj {
        if let Some(v) = v {
            self.raw(name, &v);
        }
        self
    }

    /// A repeated field of already written values, left out when empty.
    pub fn list(&mut self, name: &str, items: Vec<String>) -> &mut Obj {
        if !items.is_empty() {
            self.raw(name, &format!("[{}]", items.join(",")));
        }
        self
    }

    /// The object's text.
    pub fn done(&mut self) -> String {
        if self.out.is_empty() {
            return "{}".into();
        }
        let mut s = std::mem::take(&mut self.out);
        s.push('}');
        s
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn strings(v: &[String]) -> Vec<String> {
    v.iter().map(|s| quote(s)).collect()
}

// ---- writing responses -------------------------------------------------------------------

/// `etcdserverpb.ResponseHeader`.
pub fn header(h: &Option<ResponseHeader>) -> Option<String> {
    h.as_ref().map(|h| {
        Obj::new()
            .i64("cluster_id", h.cluster_id)
            .i64("member_id", h.member_id)
            .i64("revision", h.revision)
            .i64("raft_term", h.raft_term)
            .done()
    })
}

/// `mvccpb.KeyValue`.
pub fn kv(kv: &KeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .i64("create_revision", kv.create_revision)
        .i64("mod_revision", kv.mod_revision)
        .i64("version", kv.version)
        .bytes("value", &kv.value)
        .i64("lease", kv.lease)
        .done()
}

fn kvs(v: &[KeyValue]) -> Vec<String> {
    v.iter().map(kv).collect()
}

/// `RangeResponse`.
pub fn range(r: &RangeResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .list("kvs", kvs(&r.kvs))
        .bool("more", r.more)
        .i64("count", r.count)
        .done()
}

/// `PutResponse`.
pub fn put(r: &PutResponse) -> String {
    Obj::new().msg("header", header(&r.header)).msg("prev_kv", r.prev_kv.as_ref().map(kv)).done()
}

/// `DeleteRangeResponse`.
pub fn delete_range(r: &DeleteRangeResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .i64("deleted", r.deleted)
        .list("prev_kvs", kvs(&r.prev_kvs))
        .done()
}

/// `TxnResponse`.
pub fn txn(r: &TxnResponse) -> String {
    let ops = r
        .responses
        .iter()
        .map(|op| {
            let mut o = Obj::new();
            match &op.response {
                Some(OpResponse::ResponseRange(x)) => o.msg("response_range", Some(range(x))),
                Some(OpResponse::ResponsePut(x)) => o.msg("response_put", Some(put(x))),
                Some(OpResponse::ResponseDeleteRange(x)) => {
                    o.msg("response_delete_range", Some(delete_range(x)))
                }
                Some(OpResponse::ResponseTxn(x)) => o.msg("response_txn", Some(txn(x))),
                None => &mut o,
            };
            o.done()
        })
        .collect();
    Obj::new()
        .msg("header", header(&r.header))
        .bool("succeeded", r.succeeded)
        .list("responses", ops)
        .done()
}

/// A response that carries only its header.
pub fn header_only(h: &Option<ResponseHeader>) -> String {
    Obj::new().msg("header", header(h)).done()
}

/// `LeaseGrantResponse`.
pub fn lease_grant(r: &LeaseGrantResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .i64("ID", r.id)
        .i64("TTL", r.ttl)
        .str("error", &r.error)
        .done()
}

/// `LeaseKeepAliveResponse`.
pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> String {
    Obj::new().msg("header", header(&r.header)).i64("ID", r.id).i64("TTL", r.ttl).done()
}

/// `LeaseTimeToLiveResponse`.
pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .i64("ID", r.id)
        .i64("TTL", r.ttl)
        .i64("grantedTTL", r.granted_ttl)
        .list("keys", r.keys.iter().map(|k| quote(&B64.encode(k))).collect())
        .done()
}

/// `LeaseLeasesResponse`.
pub fn lease_leases(r: &LeaseLeasesResponse) -> String {
    let leases = r.leases.iter().map(|l| Obj::new().i64("ID", l.id).done()).collect();
    Obj::new().msg("header", header(&r.header)).list("leases", leases).done()
}

/// `StatusResponse`.
pub fn status(r: &StatusResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .str("version", &r.version)
        .i64("dbSize", r.db_size)
        .i64("leader", r.leader)
        .i64("raftIndex", r.raft_index)
        .i64("raftTerm", r.raft_term)
        .i64("raftAppliedIndex", r.raft_applied_index)
        .list("errors", strings(&r.errors))
        .i64("dbSizeInUse", r.db_size_in_use)
        .bool("isLearner", r.is_learner)
        .done()
}

/// `etcdserverpb.Member`.
fn member(m: &Member) -> String {
    Obj::new()
        .i64("ID", m.id)
        .str("name", &m.name)
        .list("peerURLs", strings(&m.peer_ur_ls))
        .list("clientURLs", strings(&m.client_ur_ls))
        .bool("isLearner", m.is_learner)
        .done()
}

/// A response with a header and the member list (`MemberList`, `MemberRemove`,
/// `MemberUpdate`, `MemberPromote`).
pub fn members(h: &Option<ResponseHeader>, v: &[Member]) -> String {
    Obj::new().msg("header", header(h)).list("members", v.iter().map(member).collect()).done()
}

/// `MemberListResponse`.
pub fn member_list(r: &MemberListResponse) -> String {
    members(&r.header, &r.members)
}

/// `MemberAddResponse`.
pub fn member_add(r: &MemberAddResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .msg("member", r.member.as_ref().map(member))
        .list("members", r.members.iter().map(member).collect())
        .done()
}

/// `AlarmResponse`.
pub fn alarm(r: &AlarmResponse) -> String {
    let alarms = r
        .alarms
        .iter()
        .map(|a| {
            let label = AlarmType::try_from(a.alarm).map(|t| t.as_str_name()).unwrap_or("");
            Obj::new().i64("memberID", a.member_id).enumeration("alarm", a.alarm, label).done()
        })
        .collect();
    Obj::new().msg("header", header(&r.header)).list("alarms", alarms).done()
}

/// `HashResponse` (the hash is a uint32: a JSON number).
pub fn hash(r: &HashResponse) -> String {
    Obj::new().msg("header", header(&r.header)).u32("hash", r.hash).done()
}

/// `SnapshotResponse`: one chunk of a snapshot.
pub fn snapshot(r: &SnapshotResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .i64("remaining_bytes", r.remaining_bytes)
        .bytes("blob", &r.blob)
        .done()
}

/// `AuthenticateResponse`.
pub fn authenticate(r: &AuthenticateResponse) -> String {
    Obj::new().msg("header", header(&r.header)).str("token", &r.token).done()
}

/// `AuthStatusResponse`.
pub fn auth_status(r: &AuthStatusResponse) -> String {
    Obj::new()
        .msg("header", header(&r.header))
        .bool("enabled", r.enabled)
        .i64("authRevision", r.auth_revision)
        .done()
}

/// A response with a header and a list of names (`roles` or `users`).
pub fn names(h: &Option<ResponseHeader>, field: &str, v: &[String]) -> String {
    Obj::new().msg("header", header(h)).list(field, strings(v)).done()
}

/// `AuthRoleGetResponse`.
pub fn role_get(r: &AuthRoleGetResponse) -> String {
    let perms = r
        .perm
        .iter()
        .map(|p| {
            let label = PermType::try_from(p.perm_type).map(|t| t.as_str_name()).unwrap_or("");
            Obj::new()
                .enumeration("permType", p.perm_type, label)
                .bytes("key", &p.key)
                .bytes("range_end", &p.range_end)
                .done()
        })
        .collect();
    Obj::new().msg("header", header(&r.header)).list("perm", perms).done()
}

/// `WatchResponse`.
pub fn watch(r: &WatchResponse) -> String {
    let events = r.events.iter().map(event).collect();
    Obj::new()
        .msg("header", header(&r.header))
        .i64("watch_id", r.watch_id)
        .bool("created", r.created)
        .bool("canceled", r.canceled)
        .i64("compact_revision", r.compact_revision)
        .str("cancel_reason", &r.cancel_reason)
        .bool("fragment", r.fragment)
        .list("events", events)
        .done()
}

fn event(e: &Event) -> String {
    let label = EventType::try_from(e.r#type).map(|t| t.as_str_name()).unwrap_or("");
    Obj::new()
        .enumeration("type", e.r#type, label)
        .msg("kv", e.kv.as_ref().map(kv))
        .msg("prev_kv", e.prev_kv.as_ref().map(kv))
        .done()
}

// ---- reading requests --------------------------------------------------------------------

/// A parsed JSON request object.
pub struct In<'a>(&'a Map<String, Value>);

fn bad(what: &str) -> Error {
    Error::InvalidArgument(format!("bad JSON for {what}"))
}

/// Go's `json: cannot unmarshal <kind> into Go value of type <ty>`.
fn wrong_type(value: &Value, ty: &str) -> Error {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    Error::InvalidArgument(format!("json: cannot unmarshal {kind} into Go value of type {ty}"))
}

/// Go's base64 decoding: standard alphabet, padding required, line breaks skipped, unused
/// trailing bits allowed.
const GO_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The object of a request body (an empty body is an empty object).
pub fn object(value: &Value) -> Result<In<'_>> {
    match value {
        Value::Object(m) => Ok(In(m)),
        _ => Err(bad("a request (expected an object)")),
    }
}

/// `snake_case` → `camelCase`, the other name jsonpb accepts.
fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl<'a> In<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).or_else(|| self.0.get(&camel(name))).filter(|v| !v.is_null())
    }

    /// A nested object, if present.
    pub fn obj(&self, name: &str) -> Result<Option<In<'a>>> {
        self.get(name).map(object).transpose()
    }

    /// A list of objects.
    pub fn objs(&self, name: &str) -> Result<Vec<In<'a>>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(object).collect(),
            Some(_) => Err(bad(name)),
        }
    }

    /// Base64 bytes.
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => {
                if let Some(e) = super::goerr::base64_error(s) {
                    return Err(Error::InvalidArgument(e));
                }
                let s: String = s.chars().filter(|c| *c != '\n' && *c != '\r').collect();
                GO_B64.decode(s).map_err(|_| bad(name))
            }
            Some(other) => Err(wrong_type(other, "[]uint8")),
        }
    }

    /// A string.
    pub fn str(&self, name: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(wrong_type(other, "string")),
        }
    }

    /// A list of strings.
    pub fn strs(&self, name: &str) -> Result<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong_type(other, "string")),
                })
                .collect(),
            Some(other) => Err(wrong_type(other, "[]string")),
        }
    }

    /// A boolean.
    pub fn bool(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(wrong_type(other, "bool")),
        }
    }

    /// An integer, as a number or a decimal string.
    pub fn int<T: TryFrom<i128>>(&self, name: &str) -> Result<T> {
        let n: i128 = match self.get(name) {
            None => 0,
            Some(Value::Number(n)) => n.as_i64().map(i128::from).ok_or_else(|| bad(name))?,
            // jsonpb reads a quoted integer as JSON: Go's syntax errors for what is not one.
            Some(Value::String(s)) => s.trim().parse().map_err(|_| {
                let e = super::goerr::json_syntax(s.as_bytes()).unwrap_or_else(|| {
                    format!("json: cannot unmarshal number {s} into Go value of type int64")
                });
                Error::InvalidArgument(e)
            })?,
            Some(other) => return Err(wrong_type(other, "int64")),
        };
        T::try_from(n).map_err(|_| bad(name))
    }

    /// An enum by name or number.
    pub fn enumeration(&self, name: &str, by_name: fn(&str) -> Option<i32>) -> Result<i32> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::String(s)) => by_name(s).ok_or_else(|| bad(name)),
            Some(Value::Number(n)) => n.as_i64().map(|n| n as i32).ok_or_else(|| bad(name)),
            Some(_) => Err(bad(name)),
        }
    }
}

/// `RangeRequest`.
pub fn range_request(o: &In<'_>) -> Result<RangeRequest> {
    Ok(RangeRequest {
        key: o.bytes("key")?,
        range_end: o.bytes("range_end")?,
        limit: o.int("limit")?,
        revision: o.int("revision")?,
        sort_order: o
            .enumeration("sort_order", |s| SortOrder::from_str_name(s).map(|v| v as i32))?,
        sort_target: o
            .enumeration("sort_target", |s| SortTarget::from_str_name(s).map(|v| v as i32))?,
        serializable: o.bool("serializable")?,
        keys_only: o.bool("keys_only")?,
        count_only: o.bool("count_only")?,
        min_mod_revision: o.int("min_mod_revision")?,
        max_mod_revision: o.int("max_mod_revision")?,
        min_create_revision: o.int("min_create_revision")?,
        max_create_revision: o.int("max_create_revision")?,
    })
}

/// `PutRequest`.
pub fn put_request(o: &In<'_>) -> Result<PutRequest> {
    Ok(PutRequest {
        key: o.bytes("key")?,
        value: o.bytes("value")?,
        lease: o.int("lease")?,
        prev_kv: o.bool("prev_kv")?,
        ignore_value: o.bool("ignore_value")?,
        ignore_lease: o.bool("ignore_lease")?,
    })
}

/// `DeleteRangeRequest`.
pub fn delete_range_request(o: &In<'_>) -> Result<DeleteRangeRequest> {
    Ok(DeleteRangeRequest {
        key: o.bytes("key")?,
        range_end: o.bytes("range_end")?,
        prev_kv: o.bool("prev_kv")?,
    })
}

/// `TxnRequest`.
pub fn txn_request(o: &In<'_>) -> Result<TxnRequest> {
    let ops =
        |name: &str| -> Result<Vec<RequestOp>> { o.objs(name)?.iter().map(request_op).collect() };
    Ok(TxnRequest {
        compare: o.objs("compare")?.iter().map(compare).collect::<Result<_>>()?,
        success: ops("success")?,
        failure: ops("failure")?,
    })
}

fn request_op(o: &In<'_>) -> Result<RequestOp> {
    let request = if let Some(r) = o.obj("request_range")? {
        Some(Op::RequestRange(range_request(&r)?))
    } else if let Some(r) = o.obj("request_put")? {
        Some(Op::RequestPut(put_request(&r)?))
    } else if let Some(r) = o.obj("request_delete_range")? {
        Some(Op::RequestDeleteRange(delete_range_request(&r)?))
    } else if let Some(r) = o.obj("request_txn")? {
        Some(Op::RequestTxn(txn_request(&r)?))
    } else {
        None
    };
    Ok(RequestOp { request })
}

fn compare(o: &In<'_>) -> Result<Compare> {
    let target_union = if o.get("version").is_some() {
        Some(TargetUnion::Version(o.int("version")?))
    } else if o.get("create_revision").is_some() {
        Some(TargetUnion::CreateRevision(o.int("create_revision")?))
    } else if o.get("mod_revision").is_some() {
        Some(TargetUnion::ModRevision(o.int("mod_revision")?))
    } else if o.get("value").is_some() {
        Some(TargetUnion::Value(o.bytes("value")?))
    } else if o.get("lease").is_some() {
        Some(TargetUnion::Lease(o.int("lease")?))
    } else {
        None
    };
    Ok(Compare {
        result: o.enumeration("result", |s| CompareResult::from_str_name(s).map(|v| v as i32))?,
        target: o.enumeration("target", |s| CompareTarget::from_str_name(s).map(|v| v as i32))?,
        key: o.bytes("key")?,
        range_end: o.bytes("range_end")?,
        target_union,
    })
}

/// `WatchCreateRequest`.
pub fn watch_create(o: &In<'_>) -> Result<WatchCreateRequest> {
    let filters = match o.get("filters") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|f| match f {
                Value::String(s) => match s.as_str() {
                    "NOPUT" => Ok(0),
                    "NODELETE" => Ok(1),
                    _ => Err(bad("filters")),
                },
                Value::Number(n) => n.as_i64().map(|n| n as i32).ok_or_else(|| bad("filters")),
                _ => Err(bad("filters")),
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(bad("filters")),
    };
    Ok(WatchCreateRequest {
        key: o.bytes("key")?,
        range_end: o.bytes("range_end")?,
        start_revision: o.int("start_revision")?,
        progress_notify: o.bool("progress_notify")?,
        filters,
        prev_kv: o.bool("prev_kv")?,
        watch_id: o.int("watch_id")?,
        fragment: o.bool("fragment")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_as_jsonpb_with_orig_names() {
        let r = RangeResponse {
            header: Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 0 }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&r),
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmFy"}],"count":"1"}"#
        );
        assert_eq!(header_only(&None), "{}");
    }

    #[test]
    fn reads_proto_and_camel_names_strings_and_numbers() {
        let v: Value = serde_json::from_str(
            r#"{"key":"Zm9v","rangeEnd":"Zm9w","limit":"2","sort_order":"DESCEND","revision":5}"#,
        )
        .unwrap();
        let r = range_request(&object(&v).unwrap()).unwrap();
        assert_eq!(r.key, b"foo");
        assert_eq!(r.range_end, b"fop");
        assert_eq!((r.limit, r.revision), (2, 5));
        assert_eq!(r.sort_order, SortOrder::Descend as i32);
        let bad_b64: Value = serde_json::from_str(r#"{"key":"!!"}"#).unwrap();
        assert!(range_request(&object(&bad_b64).unwrap()).is_err());
    }
}
