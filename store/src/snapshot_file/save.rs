//! `snapshot save`: streams Maintenance.Snapshot from one member (oxcd or etcd) into a file,
//! as etcdctl does: written to `<file>.part`, its SHA-256 trailer checked against what was
//! received, synced, and only then renamed to `<file>`, so a file at that name is always
//! whole. The snapshot is never held in memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::file::HASH_LEN;
use super::SnapshotError;
use crate::pb::etcdserverpb::auth_client::AuthClient;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::{AuthenticateRequest, SnapshotRequest};

/// What a save received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// Bytes written, trailer included.
    pub bytes: u64,
}

/// Saves the snapshot of the member at `endpoint` (`host:port` or a URL) to `path`.
/// `user` is etcdctl's `--user name:password`, needed once auth is enabled (a snapshot needs root).
pub async fn save(
    endpoint: &str,
    path: &Path,
    dial_timeout: Duration,
    user: Option<&str>,
) -> Result<Saved, SnapshotError> {
    let url =
        if endpoint.contains("://") { endpoint.to_string() } else { format!("http://{endpoint}") };
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| SnapshotError::Config(format!("endpoint {endpoint:?}: {e}")))?
        .connect_timeout(dial_timeout)
        .connect()
        .await
        .map_err(|e| SnapshotError::Config(format!("cannot connect to {url}: {e}")))?;
    let mut request = tonic::Request::new(SnapshotRequest {});
    if let Some(user) = user {
        let token = authenticate(channel.clone(), user, &url).await?;
        let value = token
            .parse()
            .map_err(|_| SnapshotError::Config(format!("{url} returned an unusable token")))?;
        request.metadata_mut().insert("token", value);
    }
    let mut client = MaintenanceClient::new(channel).max_decoding_message_size(usize::MAX);
    let mut stream = client
        .snapshot(request)
        .await
        .map_err(|s| SnapshotError::Config(format!("snapshot from {url}: {}", s.message())))?
        .into_inner();

    let part = part_path(path);
    let mut out = std::fs::File::create(&part)
        .map_err(|e| SnapshotError::Config(format!("create {}: {e}", part.display())))?;
    let result =
        async {
            let mut hasher = Sha256::new();
            // The last bytes seen, which may turn out to be the trailer.
            let mut tail: Vec<u8> = Vec::with_capacity(HASH_LEN as usize * 2);
            let mut bytes = 0u64;
            while let Some(msg) = stream.message().await.map_err(|s| {
                SnapshotError::Config(format!("snapshot from {url}: {}", s.message()))
            })? {
                out.write_all(&msg.blob).map_err(SnapshotError::Io)?;
                bytes += msg.blob.len() as u64;
                tail.extend_from_slice(&msg.blob);
                if tail.len() > HASH_LEN as usize {
                    let keep = tail.len() - HASH_LEN as usize;
                    hasher.update(&tail[..keep]);
                    tail.drain(..keep);
                }
            }
            let got: [u8; 32] = hasher.finalize().into();
            if tail.len() != HASH_LEN as usize || got[..] != tail[..] {
                return Err(SnapshotError::Corrupt(format!(
                "the snapshot received from {url} ({bytes} bytes) does not match its sha256 trailer"
            )));
            }
            out.sync_all().map_err(SnapshotError::Io)?;
            std::fs::rename(&part, path).map_err(SnapshotError::Io)?;
            Ok(Saved { bytes })
        }
        .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Logs in as etcdctl's `--user name:password` does and returns the token for later calls.
async fn authenticate(
    channel: tonic::transport::Channel,
    user: &str,
    url: &str,
) -> Result<String, SnapshotError> {
    let Some((name, password)) = user.split_once(':') else {
        return Err(SnapshotError::Config(format!("--user {user:?}: expected name:password")));
    };
    let response = AuthClient::new(channel)
        .authenticate(AuthenticateRequest {
            name: name.to_string(),
            password: password.to_string(),
        })
        .await
        .map_err(|s| SnapshotError::Config(format!("authenticate to {url}: {}", s.message())))?;
    Ok(response.into_inner().token)
}
