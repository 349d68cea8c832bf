//! Batched ReadIndex: concurrent linearizable reads share one leadership confirmation.
//!
//! A read may only use a confirmation that started after the read arrived (otherwise a
//! leader deposed in between could serve stale data). So while a round is in flight, new
//! readers wait for the next round; one round then serves all of them. Under load this
//! turns N quorum round-trips into about two per round-trip time.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::{Error, Result};

/// The outcome of one round: (round number, read index or error).
type RoundResult = (u64, Result<u64>);

/// Coalesces read-index requests into rounds.
pub struct ReadIndexBatcher {
    state: Mutex<State>,
    done: watch::Sender<RoundResult>,
}

struct State {
    /// A round is running now.
    running: bool,
    /// The number the next round to start will get.
    next_round: u64,
    /// The highest round some reader waits for.
    wanted: u64,
}

impl ReadIndexBatcher {
    /// A batcher with no round run yet.
    pub fn new() -> Arc<ReadIndexBatcher> {
        Arc::new(ReadIndexBatcher {
            state: Mutex::new(State { running: false, next_round: 1, wanted: 0 }),
            done: watch::channel((0, Ok(0))).0,
        })
    }

    /// Returns a read index confirmed after this call began; `confirm` runs one round
    /// (e.g. openraft's `get_read_log_id`).
    pub async fn read_index<F, Fut>(self: &Arc<Self>, confirm: F) -> Result<u64>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<u64>> + Send,
    {
        let mut rx = self.done.subscribe();
        let mine = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            // If a round is running it started before us: we need the one after it.
            let mine = st.next_round;
            st.wanted = st.wanted.max(mine);
            if !st.running {
                st.running = true;
                let this = self.clone();
                tokio::spawn(async move { this.run_rounds(confirm).await });
            }
            mine
        };
        let result = rx.wait_for(|(round, _)| *round >= mine).await.map_err(|_| Error::Stopped)?;
        result.1.clone()
    }

    async fn run_rounds<F, Fut>(self: Arc<Self>, confirm: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<u64>>,
    {
        loop {
            let round = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.wanted < st.next_round {
                    st.running = false;
                    return;
                }
                let round = st.next_round;
                st.next_round += 1;
                round
            };
            let result = confirm().await;
            // The previous round's outcome is superseded, never needed again.
            let _previous = self.done.send_replace((round, result));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn concurrent_reads_share_rounds_and_never_reuse_an_older_round() {
        let batcher = ReadIndexBatcher::new();
        let rounds = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for _ in 0..50 {
            let b = batcher.clone();
            let r = rounds.clone();
            handles.push(tokio::spawn(async move {
                let before = r.load(Ordering::SeqCst);
                let idx = b
                    .read_index(move || {
                        let r = r.clone();
                        async move {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            Ok(r.fetch_add(1, Ordering::SeqCst) + 1)
                        }
                    })
                    .await
                    .unwrap();
                // The index comes from a round that started after the call.
                assert!(idx > before);
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert!(rounds.load(Ordering::SeqCst) < 50, "reads were batched");
    }
}
