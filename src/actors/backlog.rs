//! How many dispatched messages are not done yet. The count is the registry's own control state
//! (the backlog cap reads it); the `threadql_backlog` gauge only mirrors it for scrapes.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntGauge;

/// Messages dispatched whose turn is not over (queued, waiting for a turn permit or running).
#[derive(Debug)]
pub struct Backlog {
    count: AtomicUsize,
    gauge: IntGauge,
}

impl Backlog {
    pub fn new(gauge: IntGauge) -> Self {
        gauge.set(0);
        Self {
            count: AtomicUsize::new(0),
            gauge,
        }
    }

    pub fn get(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// Counts a dispatched message in the registry's backlog until it is dropped: when its turn is
/// over, when `cancel` is absorbed by the running turn, or when its actor goes away unread. One
/// place to count down, whichever way a message ends.
#[derive(Debug)]
pub struct BacklogTicket(Arc<Backlog>);

impl BacklogTicket {
    pub fn new(backlog: Arc<Backlog>) -> Self {
        backlog.count.fetch_add(1, Ordering::Relaxed);
        backlog.gauge.inc();
        Self(backlog)
    }
}

impl Drop for BacklogTicket {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::Relaxed);
        self.0.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_follows_tickets_whatever_the_gauge_says() {
        let gauge = IntGauge::new("backlog_test", "test").unwrap();
        let backlog = Arc::new(Backlog::new(gauge.clone()));
        let first = BacklogTicket::new(backlog.clone());
        let second = BacklogTicket::new(backlog.clone());
        // Someone resetting the exported gauge does not change the control state.
        gauge.set(0);
        assert_eq!(backlog.get(), 2);
        drop(first);
        drop(second);
        assert_eq!(backlog.get(), 0);
    }
}
