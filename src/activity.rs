//! Work the server has taken on and not finished: messages handed to thread actors whose turn is
//! not over (the registry's backlog) and Slack calls queued or in flight in the outbox.
//!
//! Both count into one counter rather than being read one after the other: work moves between
//! them (a slash command's root post hands its question to a thread; a turn's last reply is
//! still on its way to Slack when the turn ends), and each hand-over takes the new guard before
//! dropping the old one, so a single counter never reads zero in the middle of one. Shutdown
//! drains on it and tests step on it ([`Activity::wait_until_idle`]).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts unfinished work; wakes waiters when the count reaches zero.
#[derive(Debug, Default)]
pub struct Activity {
    pending: AtomicUsize,
    idle: Notify,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one piece of work until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> ActivityGuard {
        self.pending.fetch_add(1, Ordering::SeqCst);
        ActivityGuard(self.clone())
    }

    /// Pieces of work not finished yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    pub fn is_idle(&self) -> bool {
        self.pending() == 0
    }

    /// Resolves once nothing is pending (at once when nothing is). Work that arrives later is
    /// the caller's to wait for again.
    pub async fn wait_until_idle(&self) {
        loop {
            let emptied = self.idle.notified();
            tokio::pin!(emptied);
            // Registered before the check, so a count reaching zero in between still wakes us.
            emptied.as_mut().enable();
            if self.is_idle() {
                return;
            }
            emptied.await;
        }
    }
}

/// One piece of work in an [`Activity`], counted until dropped.
#[derive(Debug)]
pub struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiting_resolves_at_once_when_nothing_is_pending() {
        let activity = Activity::new();

        tokio::time::timeout(Duration::from_secs(5), activity.wait_until_idle())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn waiting_resolves_when_the_last_guard_goes_and_not_before() {
        let activity = Activity::new();
        let first = activity.begin();
        let second = activity.begin();
        let waiter = tokio::spawn({
            let activity = activity.clone();
            async move { activity.wait_until_idle().await }
        });
        // The test runtime has one thread: yielding lets the waiter run up to its wait.
        tokio::task::yield_now().await;

        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one piece of work is still pending");
        assert_eq!(activity.pending(), 1);
        drop(second);

        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(activity.is_idle());
    }

    #[tokio::test]
    async fn a_hand_over_that_takes_the_new_guard_first_never_reads_idle() {
        let activity = Activity::new();
        let root_post = activity.begin();

        // The root post hands its question to a thread, then finishes.
        let turn = activity.begin();
        drop(root_post);

        assert!(!activity.is_idle());
        drop(turn);
        assert!(activity.is_idle());
    }
}
