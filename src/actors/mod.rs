//! Actors: one [`ThreadActor`] per Slack thread, found through the [`ThreadRegistry`].
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use actix::Addr;
use dashmap::DashMap;

use crate::domain::ThreadKey;
use crate::turn::KEEP_SLOTS_AFTER_A_BURST;

mod backlog;
pub mod burst;
pub mod registry;
pub mod thread;

pub use burst::Yielding;
pub use registry::{Dispatched, ThreadRegistry};
pub use thread::{ThreadActor, UserMessage};

/// Live thread actors by thread: the registry adds them, each removes itself when it stops.
pub type ThreadMap = DashMap<ThreadKey, LiveThread, foldhash::fast::RandomState>;

/// Gives the map's spare room back once most actors of a burst have passivated.
fn shrink_after_a_burst(threads: &ThreadMap) {
    let slots = threads.capacity();
    if slots > KEEP_SLOTS_AFTER_A_BURST && threads.len() * 4 < slots {
        threads.shrink_to_fit();
    }
}

/// A live thread actor, its mailbox depth and whether it owns the thread.
#[derive(Clone)]
pub struct LiveThread {
    pub address: Addr<ThreadActor>,
    /// Messages dispatched to this actor whose turn is not over (queued or running): counted
    /// up on dispatch and down when the message's backlog ticket drops. The registry samples it
    /// for `threadql_mailbox_messages{,_max}`.
    pub depth: Arc<AtomicUsize>,
    /// Whether the actor answers the thread's messages here (it holds the lease, or there is
    /// one replica), rather than claiming it or forwarding to the replica that holds it.
    pub owns: Arc<AtomicBool>,
}
