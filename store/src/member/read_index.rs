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

    /// Runs rounds while readers want them. Owned by the readers (spawned on demand, ends
    /// when none waits); if it dies (a panic in `confirm`), its guard fails the waiting
    /// readers and lets the next reader start rounds again.
    async fn run_rounds<F, Fut>(self: Arc<Self>, confirm: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<u64>>,
    {
        let mut guard = RoundsGuard { batcher: self.clone(), armed: true };
        loop {
            let round = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.wanted < st.next_round {
                    st.running = false;
                    guard.armed = false;
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

/// Fails the readers of a round task that ended without finishing (it panicked, or the
/// runtime dropped it): without it `running` would stay set and every later linearizable
/// read on the member would wait for rounds no task runs, until its deadline, for ever.
struct RoundsGuard {
    batcher: Arc<ReadIndexBatcher>,
    armed: bool,
}

impl Drop for RoundsGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut st = self.batcher.state.lock().unwrap_or_else(|e| e.into_inner());
        st.running = false;
        // Every reader waiting now wants a round <= `last`; later readers get later rounds.
        let last = st.wanted.max(st.next_round.saturating_sub(1));
        st.next_round = last + 1;
        let failed = Err(Error::Internal("a read index round failed".into()));
        let _superseded = self.batcher.done.send_replace((last, failed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Readers that arrive while a round is in flight must wait for the next round (whose
    /// number is its read index here), and readers arriving together share one round.
    #[tokio::test(start_paused = true)]
    async fn reads_share_rounds_that_started_after_them() {
        let batcher = ReadIndexBatcher::new();
        let starts = Arc::new(AtomicU64::new(0));
        let reader = |batcher: Arc<ReadIndexBatcher>, starts: Arc<AtomicU64>| {
            tokio::spawn(async move {
                let before = starts.load(Ordering::SeqCst);
                let confirm = move || {
                    let starts = starts.clone();
                    async move {
                        let round = starts.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Ok(round)
                    }
                };
                (before, batcher.read_index(confirm).await.expect("read index"))
            })
        };
        let mut readers: Vec<_> =
            (0..25).map(|_| reader(batcher.clone(), starts.clone())).collect();
        while starts.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Round 1 is in flight: these 25 must not be served by it.
        readers.extend((0..25).map(|_| reader(batcher.clone(), starts.clone())));
        for r in readers {
            let (before, index) = r.await.expect("reader");
            assert!(index > before, "served by round {index}, which started before the read");
        }
        assert_eq!(starts.load(Ordering::SeqCst), 2, "50 reads in two rounds");
    }

    /// A round that panics fails its readers instead of leaving them (and every later read)
    /// waiting for ever; the next read starts rounds again.
    #[tokio::test]
    async fn a_failed_round_fails_its_readers_and_the_next_read_works() {
        let batcher = ReadIndexBatcher::new();
        let limit = Duration::from_secs(10);
        let panicking = || async {
            if true {
                panic!("openraft blew up");
            }
            Ok(0)
        };
        let first = tokio::time::timeout(limit, batcher.read_index(panicking)).await;
        assert!(matches!(first, Ok(Err(Error::Internal(_)))), "{first:?}");
        let next = tokio::time::timeout(limit, batcher.read_index(|| async { Ok(42) })).await;
        assert_eq!(next.expect("not stuck"), Ok(42));
    }
}
