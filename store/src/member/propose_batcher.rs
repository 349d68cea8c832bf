//! Group commit for proposals: concurrent client writes share one raft entry.
//!
//! openraft 0.9 appends and fsyncs each `client_write` on its own before it takes the next, so
//! one entry per request would cap the member at one write per fsync. Instead every proposal
//! on the leader goes through this queue; a single task takes whatever has queued up (the
//! first proposal, plus everything that arrived while the previous entries were being
//! written) and proposes it as one `InternalBatch` entry. Apply runs the batch's commands in
//! order, each exactly as if it had been its own entry (its own revision, its own error), so
//! clients cannot tell the difference — except that many share one fsync.
//!
//! Order: a batch keeps its queue order. With two entries in flight raft may take them in
//! either order, which is still linearizable: every proposal in both was pending at once, none
//! had been answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::pb::oxcdpb::{InternalBatch, InternalRequest, InternalResponse};
use crate::raft::{Raft, Request, Response};

/// openraft's refusal of a proposal (e.g. not the leader), handed back to the caller.
pub type WriteError =
    openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, openraft::BasicNode>>;

/// What `client_write` says about one proposal.
pub type WriteResult = Result<Response, WriteError>;

/// Raft entries proposed but not yet applied, at most: one being written while the next
/// fills up keeps the disk busy without letting batches shrink to single requests.
const MAX_IN_FLIGHT: usize = 2;

/// Commands in one entry, at most.
const MAX_BATCH_LEN: usize = 1024;

/// Collecting stops once a batch holds this many encoded bytes (so an entry exceeds it by at
/// most one command; a single larger command goes alone).
const MAX_BATCH_BYTES: usize = 4 << 20;

struct Pending {
    request: InternalRequest,
    reply: oneshot::Sender<WriteResult>,
}

/// The queue in front of raft's `client_write`. Cheap to clone.
#[derive(Clone)]
pub struct ProposeBatcher {
    queue: mpsc::UnboundedSender<Pending>,
    /// Proposals handed to `write` and not yet answered (the server refuses new ones past
    /// its limit, which is what bounds the queue).
    queued: Arc<AtomicUsize>,
}

/// Counts a proposal as queued until it is answered or abandoned.
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ProposeBatcher {
    /// Starts the batching task over `raft`; it ends when the last clone is dropped.
    pub fn start(raft: Raft) -> ProposeBatcher {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, pending));
        ProposeBatcher { queue, queued: Arc::new(AtomicUsize::new(0)) }
    }

    /// Proposals waiting for raft right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Proposes `request` (in a batch with whatever else is queued) and returns what
    /// applying it produced, or raft's error (e.g. not the leader) for the caller to handle.
    #[allow(clippy::result_large_err)] // openraft's own error type, handed on unchanged
    pub async fn write(&self, request: InternalRequest) -> WriteResult {
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _queued = Queued(self.queued.clone());
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Pending { request, reply }).is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> WriteError {
    openraft::error::RaftError::Fatal(openraft::error::Fatal::Stopped)
}

async fn run(raft: Raft, mut pending: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = pending.recv().await {
        // Wait for a free slot before collecting: whatever queues meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut bytes = first.request.encoded_len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_LEN && bytes < MAX_BATCH_BYTES {
            match pending.try_recv() {
                Ok(next) => {
                    bytes += next.request.encoded_len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Proposes one entry for `batch` and answers each proposal.
async fn propose(raft: &Raft, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        if let Some(only) = batch.pop() {
            let result = raft.client_write(Request(only.request)).await.map(|r| r.data);
            let _ = only.reply.send(result);
        }
        return;
    }
    let (requests, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let entry =
        InternalRequest { request: Some(Cmd::Batch(InternalBatch { requests })), auth: None };
    match raft.client_write(Request(entry)).await {
        Ok(written) => match written.data.0.response {
            Some(Out::Batch(out)) if out.responses.len() == replies.len() => {
                for (reply, response) in replies.into_iter().zip(out.responses) {
                    let _ = reply.send(Ok(Response(response)));
                }
            }
            // The entry as a whole failed: so did every proposal in it.
            other => {
                let out = match other {
                    Some(Out::Error(err)) => Out::Error(err),
                    _ => Out::Error(
                        (&crate::error::Error::Internal(
                            "unexpected response to a batched proposal".into(),
                        ))
                            .into(),
                    ),
                };
                for reply in replies {
                    let response = InternalResponse { response: Some(out.clone()) };
                    let _ = reply.send(Ok(Response(response)));
                }
            }
        },
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
