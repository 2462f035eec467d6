//! Actors: one [`ThreadActor`] per Slack thread, found through the [`ThreadRegistry`].
use actix::Addr;
use dashmap::DashMap;

use crate::domain::ThreadKey;

mod backlog;
pub mod registry;
pub mod thread;

pub use registry::ThreadRegistry;
pub use thread::{ThreadActor, UserMessage};

/// Live thread actors by thread: the registry adds them, each removes itself when it stops.
pub type ThreadMap = DashMap<ThreadKey, Addr<ThreadActor>>;
