//! The Maintenance service: status, alarms, hashes, defragmentation and snapshots.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
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
use crate::server::EtcdServer;

use super::kv::unexpected;

/// The etcd version oxcd reports: tools gate features on it, and oxcd speaks etcd 3.5's API.
pub const ETCD_VERSION: &str = "3.5.1";
/// The cluster version reported alongside it.
pub const CLUSTER_VERSION: &str = "3.5.0";
/// Size of each snapshot chunk, as etcd's 32 KiB.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// etcd's Maintenance service.
pub struct MaintenanceService {
    server: EtcdServer,
}

impl MaintenanceService {
    /// The service over a member.
    pub fn new(server: EtcdServer) -> MaintenanceService {
        MaintenanceService { server }
    }

    fn header(&self) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        Some(self.server.headers().make(self.server.mvcc().current_revision()))
    }
}

/// Describes the member for `endpoint status` (also used by `/health`).
pub fn status(server: &EtcdServer) -> StatusResponse {
    let metrics = server.raft().metrics().borrow().clone();
    let size = server.storage().size_bytes() as i64;
    crate::metrics::DB_SIZE.set(size);
    let is_learner =
        metrics.membership_config.membership().learner_ids().any(|id| id == server.member_id());
    let errors = server
        .cluster()
        .alarms()
        .iter()
        .map(|a| {
            let name = AlarmType::try_from(a.alarm).map(|t| t.as_str_name()).unwrap_or("UNKNOWN");
            format!("memberID:{} alarm:{} ", a.member_id, name)
        })
        .collect();
    StatusResponse {
        header: Some(server.headers().make(server.mvcc().current_revision())),
        version: ETCD_VERSION.to_string(),
        db_size: size,
        leader: metrics.current_leader.unwrap_or(0),
        raft_index: metrics.last_log_index.unwrap_or(0),
        raft_term: metrics.current_term,
        raft_applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
        errors,
        db_size_in_use: size,
        is_learner,
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let req = request.into_inner();
        if AlarmAction::try_from(req.action) == Ok(AlarmAction::Get) {
            let mut alarms = self.server.cluster().alarms();
            if req.member_id != 0 {
                alarms.retain(|a| a.member_id == req.member_id);
            }
            if req.alarm != AlarmType::None as i32 {
                alarms.retain(|a| a.alarm == req.alarm);
            }
            return Ok(Response::new(AlarmResponse { header: self.header(), alarms }));
        }
        match self.server.propose(Cmd::Alarm(req)).await? {
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
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let storage = self.server.storage().clone();
        tokio::task::spawn_blocking(move || storage.compact_all())
            .await
            .map_err(|e| Error::internal("defragment", e))?;
        Ok(Response::new(DefragmentResponse { header: self.header() }))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let mvcc = self.server.mvcc().clone();
        let (hash, _, rev) = tokio::task::spawn_blocking(move || mvcc.hash_kv(0))
            .await
            .map_err(|e| Error::internal("hash", e))??;
        Ok(Response::new(HashResponse { header: Some(self.server.headers().make(rev)), hash }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let mvcc = self.server.mvcc().clone();
        let (hash, compact_revision, current) =
            tokio::task::spawn_blocking(move || mvcc.hash_kv(rev))
                .await
                .map_err(|e| Error::internal("hash", e))??;
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.headers().make(current)),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    /// Streams the applied state as a snapshot file (see `crate::snapshot`) in 32 KiB chunks.
    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let sm = self.server.state_machine().clone();
        let (bytes, _, _) = tokio::task::spawn_blocking(move || sm.dump())
            .await
            .map_err(|e| Error::internal("snapshot", e))??;
        let data = crate::snapshot::encode(&bytes);
        let header = self.header();
        let total = data.len();
        let chunks: Vec<Result<SnapshotResponse, Status>> = data
            .chunks(SNAPSHOT_CHUNK)
            .scan(total, |remaining, chunk| {
                *remaining -= chunk.len();
                Some(Ok(SnapshotResponse {
                    header,
                    remaining_bytes: *remaining as u64,
                    blob: chunk.to_vec(),
                }))
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        crate::membership::move_leader(&self.server, request.into_inner().target_id).await?;
        Ok(Response::new(MoveLeaderResponse { header: self.header() }))
    }

    async fn downgrade(
        &self,
        _request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Error::Unimplemented("etcdserver: downgrade is not supported".into()).into())
    }
}
