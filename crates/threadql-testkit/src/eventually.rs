//! Bounded waits on conditions that have no step function (a query showing up in
//! `pg_stat_activity`, a Redis key appearing). Where the server's own work is what is waited for,
//! [`crate::TestApp::wait_until_idle`] is the step.
use std::future::Future;
use std::time::{Duration, Instant};

/// Waits until `condition` holds, polling it every 25 ms, and fails the test after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_every(what, within, Duration::from_millis(25), condition).await;
}

/// [`eventually`], polling every `every` (for conditions that are costly to check).
pub async fn eventually_every<F, Fut>(what: &str, within: Duration, every: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(every).await;
    }
}
