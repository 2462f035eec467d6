//! Concurrency caps for a warehouse: queries per user and queries in all.
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Why a query could not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotsBusy {
    #[error("you already have {limit} queries running; wait for one to finish")]
    User { limit: usize },
    #[error("the warehouse is already running {limit} queries; try again shortly")]
    Global { limit: usize },
}

/// Concurrency caps for one warehouse: at most `per_user` queries of one user and `global`
/// queries in all run at once. Cheap to clone; clones share the caps.
#[derive(Clone)]
pub struct QuerySlots {
    per_user: usize,
    global_limit: usize,
    global: Arc<Semaphore>,
    running: Arc<DashMap<String, usize>>,
}

/// A running query's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct QueryPermit {
    _global: OwnedSemaphorePermit,
    _user: UserSlot,
}

/// A user's share of the per-user cap, released on drop (also when an `acquire` is abandoned
/// while it waits for a global slot).
#[derive(Debug)]
struct UserSlot {
    running: Arc<DashMap<String, usize>>,
    user: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        // Remove the entry at zero so the map holds only users with queries running.
        self.running.remove_if_mut(&self.user, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

impl QuerySlots {
    pub fn new(per_user: usize, global: usize) -> Self {
        Self {
            per_user,
            global_limit: global,
            global: Arc::new(Semaphore::new(global)),
            running: Arc::new(DashMap::new()),
        }
    }

    /// Takes a slot now or says which cap is full.
    pub fn try_acquire(&self, user: &str) -> Result<QueryPermit, SlotsBusy> {
        let user_slot = self.reserve_user(user)?;
        match Arc::clone(&self.global).try_acquire_owned() {
            Ok(global) => Ok(QueryPermit {
                _global: global,
                _user: user_slot,
            }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(SlotsBusy::Global {
                limit: self.global_limit,
            }),
        }
    }

    /// Takes a slot, waiting in line for a global one; a user at their own cap is refused at once.
    pub async fn acquire(&self, user: &str) -> Result<QueryPermit, SlotsBusy> {
        let user_slot = self.reserve_user(user)?;
        // The semaphore is never closed, so an error cannot happen; map it anyway.
        let global = Arc::clone(&self.global)
            .acquire_owned()
            .await
            .map_err(|_| SlotsBusy::Global {
                limit: self.global_limit,
            })?;
        Ok(QueryPermit {
            _global: global,
            _user: user_slot,
        })
    }

    /// Queries of `user` running (or waiting for a global slot) now.
    pub fn running(&self, user: &str) -> usize {
        self.running.get(user).map_or(0, |count| *count)
    }

    /// Global slots free now.
    pub fn available(&self) -> usize {
        self.global.available_permits()
    }

    fn reserve_user(&self, user: &str) -> Result<UserSlot, SlotsBusy> {
        let mut count = self.running.entry(user.to_string()).or_insert(0);
        if *count >= self.per_user {
            let full = *count == 0;
            drop(count);
            if full {
                // per_user == 0: do not leave an empty entry behind.
                self.running.remove_if(user, |_, count| *count == 0);
            }
            return Err(SlotsBusy::User { limit: self.per_user });
        }
        *count += 1;
        Ok(UserSlot {
            running: Arc::clone(&self.running),
            user: user.to_string(),
        })
    }
}
