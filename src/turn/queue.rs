//! Turns run a fixed number at a time, all threads together, and wait for their permit in the
//! order they came: first come, first answered, across threads. Two kinds wait in the one line:
//! a live thread actor's next turn, and a thread with no actor yet, whose actor is started only
//! when its permit comes (a burst of new threads then costs a queued message each, not an actor
//! and a turn's future each; see `ThreadRegistry`).
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Collections that a burst grows (this line, the registry's waiting room and map of live
/// actors) keep at most this many slots once it is over: a table sized for 400,000 waiting
/// threads is tens of megabytes, held for good otherwise (BENCHMARKS.md, "Bursts and memory").
pub const KEEP_SLOTS_AFTER_A_BURST: usize = 4096;

/// Handed a permit when its turn comes; gives it back when it has no use for it any more (its
/// thread went away meanwhile), and the permit passes to the next in line.
pub type Admission = Box<dyn FnOnce(TurnPermit) -> Option<TurnPermit> + Send>;

/// The line of turns waiting for a permit.
pub struct TurnQueue {
    capacity: usize,
    state: Mutex<Line>,
}

struct Line {
    free: usize,
    waiting: VecDeque<Waiter>,
}

enum Waiter {
    /// A live actor's turn, awaiting [`TurnQueue::take`].
    Turn(oneshot::Sender<TurnPermit>),
    /// A thread waiting for its actor (see [`TurnQueue::take_or_queue`]).
    Admit(Admission),
}

/// One turn's right to run; the next in line gets it when dropped.
pub struct TurnPermit {
    queue: Arc<TurnQueue>,
    /// Cleared when the permit was never used and its place passes on (no double release).
    held: bool,
}

impl std::fmt::Debug for TurnPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnPermit")
    }
}

impl TurnQueue {
    /// `capacity` turns at once.
    pub fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(Self {
            capacity,
            state: Mutex::new(Line {
                free: capacity,
                waiting: VecDeque::new(),
            }),
        })
    }

    /// Waits for a permit, behind everyone who asked before.
    pub async fn take(self: &Arc<Self>) -> TurnPermit {
        let waiting = {
            let mut line = self.line();
            if line.free > 0 && line.waiting.is_empty() {
                line.free -= 1;
                None
            } else {
                let (sender, receiver) = oneshot::channel();
                line.waiting.push_back(Waiter::Turn(sender));
                Some(receiver)
            }
        };
        match waiting {
            None => self.permit(),
            // The sender is only dropped after a failed send, which needs this receiver gone.
            Some(receiver) => receiver.await.unwrap_or_else(|_| self.permit()),
        }
    }

    /// A permit now if one is free and nobody waits; otherwise `admit` joins the line and gets
    /// one when its turn comes (called on the thread that releases it).
    pub fn take_or_queue(
        self: &Arc<Self>,
        admit: impl FnOnce(TurnPermit) -> Option<TurnPermit> + Send + 'static,
    ) -> Option<TurnPermit> {
        let mut line = self.line();
        if line.free > 0 && line.waiting.is_empty() {
            line.free -= 1;
            drop(line);
            return Some(self.permit());
        }
        line.waiting.push_back(Waiter::Admit(Box::new(admit)));
        None
    }

    /// Turns and threads waiting for a permit.
    pub fn waiting(&self) -> usize {
        self.line().waiting.len()
    }

    /// Permits held now.
    pub fn in_use(&self) -> usize {
        self.capacity - self.line().free
    }

    fn permit(self: &Arc<Self>) -> TurnPermit {
        TurnPermit {
            queue: self.clone(),
            held: true,
        }
    }

    fn line(&self) -> std::sync::MutexGuard<'_, Line> {
        // The line's state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Passes a freed permit to the first in line who still wants it, or frees it. A loop, not
    /// recursion: a long line of waiters that went away must not deepen the stack.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut line = self.line();
                match line.waiting.pop_front() {
                    Some(waiter) => {
                        // The line of a burst, over: its slots go back (one per thread that waited).
                        if line.waiting.is_empty() && line.waiting.capacity() > KEEP_SLOTS_AFTER_A_BURST {
                            line.waiting = VecDeque::new();
                        }
                        waiter
                    }
                    None => {
                        line.free += 1;
                        return;
                    }
                }
            };
            let unused = match next {
                Waiter::Turn(sender) => sender.send(self.permit()).err(),
                Waiter::Admit(admit) => admit(self.permit()),
            };
            match unused {
                Some(mut permit) => permit.held = false,
                None => return,
            }
        }
    }
}

impl Drop for TurnPermit {
    fn drop(&mut self) {
        if self.held {
            self.queue.release();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A turn that notes `name` in `order` once its permit comes.
    fn take_in_turn(
        queue: &Arc<TurnQueue>,
        order: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        let (queue, order) = (queue.clone(), order.clone());
        tokio::spawn(async move {
            let permit = queue.take().await;
            order.lock().unwrap().push(name);
            drop(permit);
        })
    }

    #[tokio::test]
    async fn permits_go_to_waiters_in_the_order_they_came_whatever_their_kind() {
        let queue = TurnQueue::new(1);
        let first = queue.take().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        // A turn, then a thread, then a turn wait.
        let turn_a = take_in_turn(&queue, &order, "turn a");
        tokio::task::yield_now().await;
        assert_eq!(queue.waiting(), 1);
        let admitted = order.clone();
        assert!(queue
            .take_or_queue(move |permit| {
                admitted.lock().unwrap().push("thread");
                drop(permit);
                None
            })
            .is_none());
        let turn_b = take_in_turn(&queue, &order, "turn b");
        tokio::task::yield_now().await;
        assert_eq!(queue.waiting(), 3);

        drop(first);
        turn_a.await.unwrap();
        turn_b.await.unwrap();

        assert_eq!(*order.lock().unwrap(), ["turn a", "thread", "turn b"]);
        assert_eq!(queue.in_use(), 0, "every permit came back");
    }

    #[tokio::test]
    async fn a_permit_nobody_wants_passes_on_without_recursion() {
        let queue = TurnQueue::new(1);
        let held = queue.take().await;
        let declined = Arc::new(AtomicUsize::new(0));
        // Many threads that went away before their turn, then one that takes it.
        for _ in 0..100_000 {
            let declined = declined.clone();
            queue.take_or_queue(move |permit| {
                declined.fetch_add(1, Ordering::Relaxed);
                Some(permit)
            });
        }
        let kept = Arc::new(Mutex::new(None));
        let keeper = kept.clone();
        queue.take_or_queue(move |permit| {
            *keeper.lock().unwrap() = Some(permit);
            None
        });

        drop(held);

        assert_eq!(declined.load(Ordering::Relaxed), 100_000);
        assert!(kept.lock().unwrap().is_some(), "the last in line got the permit");
        assert_eq!(queue.in_use(), 1);
        kept.lock().unwrap().take();
        assert_eq!(queue.in_use(), 0);
    }

    #[tokio::test]
    async fn no_more_than_the_capacity_run_at_once() {
        let queue = TurnQueue::new(3);
        let permits: Vec<TurnPermit> = futures::future::join_all((0..3).map(|_| queue.take())).await;
        assert!(queue.take_or_queue(Some).is_none(), "a fourth waits");
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.take().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(permits);
        let last = waiter.await.unwrap();
        assert_eq!(queue.in_use(), 1);
        drop(last);
        assert_eq!(queue.in_use(), 0);
    }
}
