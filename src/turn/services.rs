//! What a turn needs from the rest of the server, shared by every thread.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{CostLimit, DailyBudgets, Reply, ThreadKey};
use crate::interpret::Interpreter;
use crate::limits::QuerySlots;
use crate::metrics::Metrics;
use crate::sql::SqlGuard;
use crate::store::StateStore;
use crate::warehouse::Warehouse;

/// Where a thread's replies go: Slack's Web API, or the terminal in `threadql demo`.
#[async_trait]
pub trait Replier: Send + Sync {
    async fn reply(&self, thread: &ThreadKey, reply: Reply) -> anyhow::Result<()>;

    /// Shows that a slow turn is under way (with a way to cancel it); returns a handle that
    /// [`Replier::replace`] can turn into the answer. `None`: nothing to replace later.
    async fn progress(&self, _thread: &ThreadKey, _text: &str) -> anyhow::Result<Option<String>> {
        Ok(None)
    }

    /// Replaces a progress message with the reply (or, for a file, posts it and closes the
    /// progress message).
    async fn replace(&self, thread: &ThreadKey, _progress: &str, reply: Reply) -> anyhow::Result<()> {
        self.reply(thread, reply).await
    }

    /// Marks the user's message (👀 when work starts, ✅ or ⚠️ when it ends).
    async fn react(&self, _thread: &ThreadKey, _message_ts: &str, _emoji: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Row caps and timeouts for turns.
#[derive(Debug, Clone, Copy)]
pub struct TurnLimits {
    /// Rows shown in an answer.
    pub max_rows: usize,
    /// Rows fetched for an answer (to count them); more means "N+ rows".
    pub answer_fetch_cap: usize,
    pub export_max_rows: usize,
    pub query_timeout: Duration,
    /// A thread actor idle this long is persisted and stopped.
    pub idle_after: Duration,
    /// A turn still working after this long shows a progress message with a Cancel button.
    pub progress_after: Duration,
    /// The cost guard: above this estimate a version waits for "Run anyway".
    pub confirm_above: Option<CostLimit>,
    /// The cost guard: above this estimate a version is refused.
    pub refuse_above: Option<CostLimit>,
    /// What the warehouse may read per day for one user and one channel.
    pub daily_budgets: DailyBudgets,
}

/// Everything a turn needs, shared by all threads.
pub struct ThreadServices {
    pub interpreter: Arc<dyn Interpreter>,
    pub guard: SqlGuard,
    /// Who may see what: the roles the guard enforces for each asker.
    pub access: Arc<crate::access::AccessControl>,
    pub warehouse: Arc<dyn Warehouse>,
    pub store: Arc<dyn StateStore>,
    pub replier: Arc<dyn Replier>,
    pub metrics: Metrics,
    /// Caps on queries running at once, per user and for the warehouse.
    pub slots: QuerySlots,
    pub limits: TurnLimits,
    pub timezone: chrono_tz::Tz,
    /// Whether to mark questions with 👀 / ✅ / ⚠️.
    pub reactions: bool,
    /// Turns running at once, all threads together, in the order they came. Under a burst every
    /// new thread's turn would otherwise start at once and hold its state, rendered replies and
    /// pending Slack call in memory; beyond the cap a turn waits as its message (a new thread's
    /// actor is not even started: see `ThreadRegistry`).
    pub turn_permits: Arc<super::TurnQueue>,
    /// Slack user ids who see and change everyone's schedules (`THREADQL_ADMINS`).
    pub admins: Vec<String>,
    /// This replica among several (`THREADQL_ADVERTISE_URL`); `None`: the only one.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl ThreadServices {
    /// Where thread leases are kept, when several replicas share the threads.
    pub fn ownership_store(&self) -> Option<&dyn crate::store::ThreadOwnership> {
        self.cluster.as_ref().and(self.store.ownership())
    }

    pub fn today(&self) -> chrono::NaiveDate {
        chrono::Utc::now().with_timezone(&self.timezone).date_naive()
    }
}
