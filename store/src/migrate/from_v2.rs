//! `oxcd migrate --from-v2-endpoint URL [--follow]`: copies a live etcd v2 tree into v3
//! keys of a running member, then (with `--follow`) keeps applying the v2 tree's changes.
//!
//! The copy reads the whole tree at one v2 index (`GET /v2/keys/?recursive=true`, whose
//! `X-Etcd-Index` names it) and writes it (see `writer`). Following watches from the next
//! index (`wait=true&recursive=true&waitIndex=N`): sets, creates, updates and swaps of keys
//! become puts, deletes and expiries become deletes (a directory's, of every key under it);
//! directories themselves are not v3 keys. If the follower falls more than etcd's 1000
//! events behind (`401 event index cleared`), it copies the tree again and deletes the keys
//! that disappeared meanwhile, then follows from there. Ends when `stop` resolves.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use super::http;
use super::v2_json::{flatten, to_v3, ErrorBody, Response, V3Key};
use super::writer::{V3Writer, Written};
use super::MigrateError;

/// How long one watch long-poll may wait before it is reissued (same index).
const WATCH_POLL: Duration = Duration::from_secs(60);
/// How long the tree listing may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(300);
/// The v2 error code of a watch index older than the event history.
const EVENT_INDEX_CLEARED: u32 = 401;

/// Settings of a live migration.
#[derive(Debug, Clone)]
pub struct FromV2 {
    /// The v2 endpoint, `http://host:port`.
    pub source: String,
    /// Leave TTLs out.
    pub no_ttl: bool,
    /// Replace existing v3 keys.
    pub overwrite: bool,
}

/// The result of one copy.
#[derive(Debug, Clone)]
pub struct Copied {
    /// What was written.
    pub written: Written,
    /// The v2 index the copy reflects.
    pub v2_index: u64,
    /// The keys copied.
    pub keys: BTreeSet<Vec<u8>>,
}

/// Reads the whole v2 tree: its keys and the index it was read at.
pub async fn list(source: &str) -> Result<(Vec<V3Key>, u64), MigrateError> {
    let err = |message: String| MigrateError::Source { url: source.to_string(), message };
    let resp = http::get(source, "/v2/keys/?recursive=true&sorted=true", LIST_TIMEOUT)
        .await
        .map_err(err)?;
    let index = resp.etcd_index.ok_or_else(|| {
        err("no X-Etcd-Index header: is the v2 API enabled (--enable-v2)?".into())
    })?;
    if resp.status != 200 {
        return Err(err(format!("HTTP {}: {}", resp.status, String::from_utf8_lossy(&resp.body))));
    }
    let tree: Response = serde_json::from_slice(&resp.body)
        .map_err(|e| err(format!("unexpected answer to a recursive get: {e}")))?;
    let mut keys = Vec::new();
    flatten(&tree.node, &mut keys);
    Ok((keys, index))
}

/// Copies the v2 tree once.
pub async fn copy(
    cfg: &FromV2,
    writer: &mut V3Writer,
    overwrite: bool,
) -> Result<Copied, MigrateError> {
    let (keys, v2_index) = list(&cfg.source).await?;
    let written = writer.put_all(&keys, overwrite).await?;
    Ok(Copied { written, v2_index, keys: keys.into_iter().map(|k| k.key).collect() })
}

/// Follows the v2 tree from `copied` until `stop` resolves; `report` hears of each change.
pub async fn follow(
    cfg: &FromV2,
    writer: &mut V3Writer,
    mut copied: Copied,
    stop: impl Future<Output = ()>,
    report: &mut dyn FnMut(&str),
) -> Result<(), MigrateError> {
    let mut next = copied.v2_index + 1;
    let mut backoff = Duration::from_millis(100);
    tokio::pin!(stop);
    loop {
        let path = format!("/v2/keys/?wait=true&recursive=true&waitIndex={next}");
        let resp = tokio::select! {
            _ = &mut stop => return Ok(()),
            r = http::get(&cfg.source, &path, WATCH_POLL) => r,
        };
        let resp = match resp {
            Ok(r) => {
                backoff = Duration::from_millis(100);
                r
            }
            Err(e) if e.starts_with("no answer within") => continue,
            Err(e) => {
                report(&format!("v2 endpoint {}: {e}; retrying in {backoff:?}", cfg.source));
                tokio::select! {
                    _ = &mut stop => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if resp.status != 200 {
            let body: Option<ErrorBody> = serde_json::from_slice(&resp.body).ok();
            if body.as_ref().is_some_and(|b| b.error_code == EVENT_INDEX_CLEARED) {
                report(&format!(
                    "fell behind the v2 event history at index {next}; copying the tree again"
                ));
                let old = std::mem::take(&mut copied.keys);
                copied = copy(cfg, writer, true).await?;
                let gone: Vec<Vec<u8>> = old.difference(&copied.keys).cloned().collect();
                writer.delete_keys(&gone).await?;
                next = copied.v2_index + 1;
                continue;
            }
            return Err(MigrateError::Source {
                url: cfg.source.clone(),
                message: format!("HTTP {}: {}", resp.status, String::from_utf8_lossy(&resp.body)),
            });
        }
        let event: Response =
            serde_json::from_slice(&resp.body).map_err(|e| MigrateError::Source {
                url: cfg.source.clone(),
                message: format!("unexpected watch event: {e}"),
            })?;
        next = event.node.modified_index + 1;
        let key = event.node.key.clone();
        let revision = match event.action.as_str() {
            "set" | "create" | "update" | "compareAndSwap" => match to_v3(&event.node) {
                Some(v3) => {
                    copied.keys.insert(v3.key.clone());
                    writer.put(&v3).await?
                }
                None => continue,
            },
            "delete" | "compareAndDelete" | "expire" => {
                let dir = event.node.dir || event.prev_node.as_ref().is_some_and(|p| p.dir);
                if dir {
                    let prefix = format!("{key}/").into_bytes();
                    copied.keys.retain(|k| !k.starts_with(&prefix));
                } else {
                    copied.keys.remove(key.as_bytes());
                }
                writer.delete(key.as_bytes(), dir).await?
            }
            _ => continue,
        };
        report(&format!(
            "{} {key} (v2 index {}) → revision {revision}",
            event.action, event.node.modified_index
        ));
    }
}
