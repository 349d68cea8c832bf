//! Waiting on the rig: polling a condition with a bound instead of sleeping a fixed time
//! (the machines are noisy; a test waits for what it needs, never for a duration).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`poll_some`] and [`wait_some`] look again.
pub const EVERY: Duration = Duration::from_millis(500);

/// Polls `f` every `every` until it gives `Some`, or `limit` passes (`None` then).
pub async fn poll<T, F, Fut>(limit: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// [`poll`] every [`EVERY`].
pub async fn poll_some<T, F, Fut>(limit: Duration, f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(limit, EVERY, f).await
}

/// [`poll_some`], panicking with `what` when `limit` passes.
pub async fn wait_some<T, F, Fut>(limit: Duration, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_some(limit, f).await.unwrap_or_else(|| panic!("timed out waiting for {what}"))
}
