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
//! Ownership: the member owns the batching task ([`BatcherTask`]: its `JoinHandle` and the
//! signal that stops it). The task stops when told to (after raft has shut down), answering
//! whatever is still queued with raft's "stopped"; it ends with an error if a batch's task
//! panicked, and the member treats its end before shutdown as fatal (`EtcdServer::failed`).
//!
//! Order: a batch keeps its queue order. With two entries in flight raft may take them in
//! either order, which is still linearizable: every proposal in both was pending at once, none
//! had been answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prost::Message;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::pb::oxcdpb::{InternalBatch, InternalRequest, InternalResponse};
use crate::raft::{Raft, Request, Response};

/// Writes one entry through raft (`client_write`); a function so tests can stand in for raft.
type Write =
    Arc<dyn Fn(InternalRequest) -> futures::future::BoxFuture<'static, WriteResult> + Send + Sync>;

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

/// Why the batching task ended on its own.
#[derive(Debug, thiserror::Error)]
pub enum BatcherError {
    /// A batch's task panicked: its proposals were answered "stopped", and the member can no
    /// longer be trusted to answer the next ones.
    #[error("a batch of proposals failed: {0}")]
    BatchFailed(String),
    /// The task itself panicked.
    #[error("the propose batcher panicked: {0}")]
    Panicked(String),
}

/// The running batching task, owned by the member: stop it with `stop`, or learn with
/// `ended` that it ended on its own.
pub struct BatcherTask {
    handle: Option<JoinHandle<Result<(), BatcherError>>>,
    stop: watch::Sender<bool>,
}

impl BatcherTask {
    /// Resolves when the task has ended, with why; pending forever once it was reported.
    /// Cancel-safe: the handle is kept until the task ended.
    pub async fn ended(&mut self) -> Result<(), BatcherError> {
        let Some(handle) = self.handle.as_mut() else { return std::future::pending().await };
        let result = handle.await;
        self.handle = None;
        result.unwrap_or_else(|e| Err(BatcherError::Panicked(e.to_string())))
    }

    /// Tells the task to stop (queued proposals are answered "stopped") and waits for it,
    /// at most `timeout`; returns how it ended (`Ok` also when it had already been reported).
    pub async fn stop(&mut self, timeout: std::time::Duration) -> Result<(), BatcherError> {
        self.stop.send_replace(true);
        if self.handle.is_none() {
            return Ok(());
        }
        match tokio::time::timeout(timeout, self.ended()).await {
            Ok(result) => result,
            Err(_) => {
                if let Some(handle) = self.handle.take() {
                    handle.abort();
                }
                Err(BatcherError::BatchFailed(format!("still running after {timeout:?}")))
            }
        }
    }
}

impl ProposeBatcher {
    /// Starts the batching task over `raft`; the caller owns it (see `BatcherTask`).
    pub fn start(raft: Raft) -> (ProposeBatcher, BatcherTask) {
        let write: Write = Arc::new(move |entry| {
            let raft = raft.clone();
            Box::pin(async move { raft.client_write(Request(entry)).await.map(|r| r.data) })
        });
        ProposeBatcher::start_with(write)
    }

    /// Starts the batching task over any `write` (raft's, or a test's).
    fn start_with(write: Write) -> (ProposeBatcher, BatcherTask) {
        let (queue, pending) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(run(write, pending, stop_rx));
        let batcher = ProposeBatcher { queue, queued: Arc::new(AtomicUsize::new(0)) };
        (batcher, BatcherTask { handle: Some(handle), stop })
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

/// Takes proposals off the queue in batches until `stop` (or until every sender is gone);
/// then answers what is still queued with "stopped" and waits for the batches in flight.
async fn run(
    write: Write,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BatcherError> {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut in_flight = JoinSet::new();
    let outcome = loop {
        let first = tokio::select! {
            // A batch whose task panicked ends the batcher (its callers were told "stopped").
            Some(done) = in_flight.join_next() => match done {
                Ok(()) => continue,
                Err(e) => break Err(BatcherError::BatchFailed(e.to_string())),
            },
            next = pending.recv() => match next {
                Some(first) => first,
                None => break Ok(()),
            },
            _ = stop.wait_for(|stop| *stop) => break Ok(()),
        };
        // Wait for a free slot before collecting: whatever queues meanwhile joins this batch.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stop.wait_for(|stop| *stop) => {
                let _ = first.reply.send(Err(stopped()));
                break Ok(());
            }
        };
        let Ok(slot) = slot else { break Ok(()) };
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
        let write = write.clone();
        in_flight.spawn(async move {
            propose(&write, batch).await;
            drop(slot);
        });
    };
    pending.close();
    while let Ok(queued) = pending.try_recv() {
        let _ = queued.reply.send(Err(stopped()));
    }
    while let Some(done) = in_flight.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a batch of proposals failed");
        }
    }
    outcome
}

/// Proposes one entry for `batch` and answers each proposal.
async fn propose(write: &Write, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        if let Some(only) = batch.pop() {
            let result = write(only.request).await;
            let _ = only.reply.send(result);
        }
        return;
    }
    let (requests, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let entry =
        InternalRequest { request: Some(Cmd::Batch(InternalBatch { requests })), auth: None };
    match write(entry).await {
        Ok(written) => match written.0.response {
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
                    let response =
                        InternalResponse { response: Some(out.clone()), applied_index: 0 };
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pb::etcdserverpb::CompactionRequest;

    fn request() -> InternalRequest {
        InternalRequest { request: Some(Cmd::Compaction(CompactionRequest::default())), auth: None }
    }

    fn is_stopped(result: &WriteResult) -> bool {
        matches!(result, Err(openraft::error::RaftError::Fatal(openraft::error::Fatal::Stopped)))
    }

    /// A stand-in for raft: counts the entries written, and holds each until `open` is set,
    /// then refuses it as a raft that has shut down does.
    fn gated_raft() -> (Write, watch::Receiver<usize>, watch::Sender<bool>) {
        let (written, written_rx) = watch::channel(0usize);
        let (open, open_rx) = watch::channel(false);
        let write: Write = Arc::new(move |_entry| {
            written.send_modify(|n| *n += 1);
            let mut open = open_rx.clone();
            Box::pin(async move {
                let _ = open.wait_for(|open| *open).await;
                Err(stopped())
            })
        });
        (write, written_rx, open)
    }

    const LIMIT: Duration = Duration::from_secs(10);

    /// Stopping the owned task answers the proposals still queued with "stopped" without
    /// writing them, waits for the entries in flight, and ends cleanly.
    #[tokio::test]
    async fn stop_answers_what_is_queued_and_waits_for_what_is_in_flight() {
        let (write, mut written, open) = gated_raft();
        let (batcher, mut task) = ProposeBatcher::start_with(write);
        let propose = |b: &ProposeBatcher| {
            let b = b.clone();
            tokio::spawn(async move { b.write(request()).await })
        };
        // Two entries in flight (MAX_IN_FLIGHT), one at a time so each is its own batch.
        let first = propose(&batcher);
        tokio::time::timeout(LIMIT, written.wait_for(|n| *n == 1)).await.expect("1st written").ok();
        let second = propose(&batcher);
        tokio::time::timeout(LIMIT, written.wait_for(|n| *n == 2)).await.expect("2nd written").ok();
        // These two wait for a slot.
        let queued = [propose(&batcher), propose(&batcher)];
        let deadline = tokio::time::Instant::now() + LIMIT;
        while batcher.queued() < 4 {
            assert!(tokio::time::Instant::now() < deadline, "proposals never queued");
            tokio::task::yield_now().await;
        }
        let stopping = tokio::spawn(async move { task.stop(LIMIT).await });
        for waiting in queued {
            let result =
                tokio::time::timeout(LIMIT, waiting).await.expect("answered").expect("task");
            assert!(is_stopped(&result), "a queued proposal got {result:?}");
        }
        assert_eq!(*written.borrow(), 2, "queued proposals must not be written");
        assert!(!stopping.is_finished(), "stop must wait for the entries in flight");
        // Raft shuts down: the entries in flight are refused and the task ends.
        open.send_replace(true);
        let ended = tokio::time::timeout(LIMIT, stopping).await.expect("stopped").expect("task");
        assert!(ended.is_ok(), "{ended:?}");
        for in_flight in [first, second] {
            let result = in_flight.await.expect("task");
            assert!(is_stopped(&result), "{result:?}");
        }
        assert!(is_stopped(&batcher.write(request()).await), "a proposal after stop");
    }

    /// A batch whose task panics does not vanish: its caller is told "stopped", the owned
    /// task ends with the error (the member then exits), and later proposals are refused.
    #[tokio::test]
    async fn a_panicking_batch_ends_the_owned_task_with_an_error() {
        let write: Write = Arc::new(|_entry| Box::pin(async { panic!("raft blew up") }));
        let (batcher, mut task) = ProposeBatcher::start_with(write);
        let result = tokio::time::timeout(LIMIT, batcher.write(request())).await.expect("answer");
        assert!(is_stopped(&result), "{result:?}");
        let ended = tokio::time::timeout(LIMIT, task.ended()).await.expect("task ended");
        assert!(matches!(ended, Err(BatcherError::BatchFailed(_))), "{ended:?}");
        let later = tokio::time::timeout(LIMIT, batcher.write(request())).await.expect("answer");
        assert!(is_stopped(&later), "{later:?}");
        assert!(task.stop(LIMIT).await.is_ok(), "already reported: nothing more to stop");
    }
}
