//! How many dispatched messages are not done yet. The count is the registry's own control state
//! (the backlog cap reads it); the `threadql_backlog` gauge only mirrors it for scrapes. Each
//! message also counts in the server's [`Activity`], which shutdown and tests wait on.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntGauge;

use crate::activity::{Activity, ActivityGuard};

/// The mailbox depth of an actor that has stopped taking messages: it stops only when its depth
/// is 0, and turns it into this in the same step, so a message counted in before is one it still
/// handles and a message that finds this goes to a new actor (see `ThreadActor::stopping`).
pub const CLOSED: usize = usize::MAX;

/// Closes a mailbox whose depth is 0, in one step (see [`CLOSED`]); false while a message is
/// counted in, which the actor is then still to handle.
pub fn close_mailbox(depth: &AtomicUsize) -> bool {
    depth
        .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Messages dispatched whose turn is not over (queued, waiting for a turn permit or running).
#[derive(Debug)]
pub struct Backlog {
    count: AtomicUsize,
    gauge: IntGauge,
    activity: Arc<Activity>,
}

impl Backlog {
    /// A backlog whose messages also count in `activity`.
    pub fn new(gauge: IntGauge, activity: Arc<Activity>) -> Self {
        gauge.set(0);
        Self {
            count: AtomicUsize::new(0),
            gauge,
            activity,
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
pub struct BacklogTicket {
    backlog: Arc<Backlog>,
    /// The receiving actor's own count (see [`super::LiveThread::depth`]).
    depth: Option<Arc<AtomicUsize>>,
    /// Dropped after the backlog's own count goes down (fields drop after `drop` runs).
    _activity: ActivityGuard,
}

impl BacklogTicket {
    pub fn new(backlog: Arc<Backlog>) -> Self {
        let activity = backlog.activity.begin();
        backlog.count.fetch_add(1, Ordering::Relaxed);
        backlog.gauge.inc();
        Self {
            backlog,
            depth: None,
            _activity: activity,
        }
    }

    /// Counts the message in its actor's mailbox depth too, until the ticket drops; gives the
    /// ticket back when the actor has closed its mailbox (it is stopping: see [`CLOSED`]).
    pub fn in_mailbox(mut self, depth: Arc<AtomicUsize>) -> Result<Self, Self> {
        let entered = depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n != CLOSED).then(|| n + 1))
            .is_ok();
        if !entered {
            return Err(self);
        }
        self.depth = Some(depth);
        Ok(self)
    }
}

impl BacklogTicket {
    /// No longer counted in an actor's mailbox (it was not sent there after all).
    pub fn out_of_mailbox(mut self) -> Self {
        if let Some(depth) = self.depth.take() {
            depth.fetch_sub(1, Ordering::AcqRel);
        }
        self
    }
}

impl Drop for BacklogTicket {
    fn drop(&mut self) {
        self.backlog.count.fetch_sub(1, Ordering::Relaxed);
        self.backlog.gauge.dec();
        if let Some(depth) = &self.depth {
            depth.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_follows_tickets_whatever_the_gauge_says() {
        let gauge = IntGauge::new("backlog_test", "test").unwrap();
        let activity = Activity::new();
        let backlog = Arc::new(Backlog::new(gauge.clone(), activity.clone()));
        let first = BacklogTicket::new(backlog.clone());
        let second = BacklogTicket::new(backlog.clone());
        // Someone resetting the exported gauge does not change the control state.
        gauge.set(0);
        assert_eq!(backlog.get(), 2);
        assert_eq!(activity.pending(), 2, "each message counts as the server's work too");
        drop(first);
        drop(second);
        assert_eq!(backlog.get(), 0);
        assert!(activity.is_idle());
    }

    #[test]
    fn a_mailbox_closes_only_when_empty_and_then_refuses_messages() {
        let gauge = IntGauge::new("backlog_close_test", "test").unwrap();
        let backlog = Arc::new(Backlog::new(gauge, Activity::new()));
        let depth = Arc::new(AtomicUsize::new(0));

        // A message counted in before the actor stops keeps it running until handled.
        let counted = BacklogTicket::new(backlog.clone()).in_mailbox(depth.clone()).unwrap();
        assert!(!close_mailbox(&depth), "not closed with a message counted in");
        drop(counted);
        assert!(close_mailbox(&depth), "closed once that message is done");

        // A message that finds it closed is given back, still counted in the backlog, for a
        // new actor; the closed depth stays closed.
        let refused = BacklogTicket::new(backlog.clone())
            .in_mailbox(depth.clone())
            .unwrap_err();
        assert_eq!(depth.load(Ordering::Acquire), CLOSED);
        assert_eq!(backlog.get(), 1);
        let moved = refused.in_mailbox(Arc::new(AtomicUsize::new(0))).unwrap();
        drop(moved);
        assert_eq!(backlog.get(), 0);
        assert_eq!(
            depth.load(Ordering::Acquire),
            CLOSED,
            "dropping it elsewhere leaves the closed one alone"
        );
    }
}
