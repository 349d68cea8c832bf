//! The Maintenance service: status, alarms, hashes, defragmentation and snapshots.

use std::pin::Pin;

use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::member::handle::{unexpected, untranslated_auth_error as untranslated, Member};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;

pub use crate::version::{CLUSTER_VERSION, ETCD_VERSION};
/// Size of each snapshot chunk, as etcd's 32 KiB.
const SNAPSHOT_CHUNK: usize = 32 * 1024;
/// The SHA-256 trailer that ends a snapshot stream.
const SNAPSHOT_HASH_LEN: u64 = 32;

/// etcd's Maintenance service.
pub struct MaintenanceService {
    server: Member,
}

impl MaintenanceService {
    /// The service over a member.
    pub fn new(server: Member) -> MaintenanceService {
        MaintenanceService { server }
    }

    /// etcd's `authMaintenanceServer.isAuthenticated`: defragment, snapshot and the hashes
    /// need the root role. etcd returns these auth errors untranslated (code Unknown, the
    /// auth package's text), and so does this.
    async fn check_admin(&self, metadata: &tonic::metadata::MetadataMap) -> Result<()> {
        let caller = super::caller(&self.server, metadata).await.map_err(untranslated)?;
        self.server.check_admin(&caller).map_err(untranslated)
    }

    fn header(&self) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        Some(self.server.header())
    }
}

/// Describes the member for `endpoint status` (also used by `/health`).
pub fn status(server: &Member) -> StatusResponse {
    let raft = server.raft_status();
    let size = server.db_size_bytes() as i64;
    crate::metrics::DB_SIZE.set(size);
    let errors = server
        .alarms()
        .iter()
        .map(|a| {
            let name = AlarmType::try_from(a.alarm).map(|t| t.as_str_name()).unwrap_or("UNKNOWN");
            format!("memberID:{} alarm:{} ", a.member_id, name)
        })
        .collect();
    StatusResponse {
        header: Some(server.header()),
        version: ETCD_VERSION.to_string(),
        db_size: size,
        leader: raft.leader,
        raft_index: raft.last_index,
        raft_term: raft.term,
        raft_applied_index: raft.applied_index,
        errors,
        db_size_in_use: size,
        is_learner: raft.is_learner,
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        // etcd checks only that a token is valid: alarms need no permission.
        let caller = super::caller(&self.server, request.metadata()).await?;
        let req = request.into_inner();
        if AlarmAction::try_from(req.action) == Ok(AlarmAction::Get) {
            let mut alarms = self.server.alarms();
            if req.member_id != 0 {
                alarms.retain(|a| a.member_id == req.member_id);
            }
            if req.alarm != AlarmType::None as i32 {
                alarms.retain(|a| a.alarm == req.alarm);
            }
            return Ok(Response::new(AlarmResponse { header: self.header(), alarms }));
        }
        match self.server.propose_as(&caller, Cmd::Alarm(req)).await? {
            Out::Alarm(mut resp) => {
                self.server.headers().stamp(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(status(&self.server)))
    }

    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.check_admin(request.metadata()).await?;
        self.server.defragment().await?;
        // etcd answers both with an empty response, no header.
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.check_admin(request.metadata()).await?;
        let timer = crate::metrics::HASH_DURATION.start_timer();
        let (hash, _, rev) = self.server.hash_kv(0).await?;
        timer.observe_duration();
        Ok(Response::new(HashResponse { header: Some(self.server.headers().make(rev)), hash }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.check_admin(request.metadata()).await?;
        let rev = request.into_inner().revision;
        let timer = crate::metrics::HASH_REV_DURATION.start_timer();
        let (hash, compact_revision, current) = self.server.hash_kv(rev).await?;
        timer.observe_duration();
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.headers().make(current)),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    /// Streams the applied state as etcd's snapshot file (see `crate::snapshot_file::export`) in 32 KiB
    /// chunks, then the SHA-256 of the bytes sent, as etcd does: etcd's tools check it.
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        self.check_admin(request.metadata()).await?;
        let (file, size) = self.server.snapshot_file().await?;
        let header = self.header();
        let mut file = tokio::fs::File::from_std(file);
        let total = size + SNAPSHOT_HASH_LEN;
        let server = self.server.clone();
        let output = async_stream::try_stream! {
            let mut hasher = Sha256::new();
            let mut sent = 0u64;
            while sent < size {
                // A stopping member ends the transfer rather than wait for a slow reader.
                if server.is_stopping() {
                    Err::<(), Error>(Error::Stopped)?;
                }
                let mut blob = vec![0u8; (size - sent).min(SNAPSHOT_CHUNK as u64) as usize];
                file.read_exact(&mut blob).await.map_err(|e| Error::internal("read snapshot", e))?;
                hasher.update(&blob);
                sent += blob.len() as u64;
                yield SnapshotResponse { header, remaining_bytes: total - sent, blob };
            }
            let blob = hasher.finalize().to_vec();
            yield SnapshotResponse { header, remaining_bytes: 0, blob };
        };
        Ok(Response::new(Box::pin(output)))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.server.move_leader(request.into_inner().target_id).await?;
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }

    async fn downgrade(
        &self,
        _request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Error::Unimplemented("etcdserver: downgrade is not supported".into()).into())
    }
}
