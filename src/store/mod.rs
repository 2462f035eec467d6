//! The state store: thread snapshots, query history and audit rows. Postgres in production
//! (and for several replicas), SQLite as the embedded single-node default.
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{ErrorCode, LlmUsage, QueryId, ThreadKey, ThreadState, UserId};

mod batch;
mod ownership;
mod postgres;
mod retention;
mod schedules;
mod schedules_postgres;
mod schedules_sqlite;
mod sqlite;

pub use batch::SnapshotBatcher;
pub use ownership::{Claim, Fence, ThreadOwnership, ORPHANS_PER_SWEEP};
pub use retention::{delete_expired_audit_rows, AuditRetention};
pub use schedules::{
    next_fire_after, ExecutionEnd, ExecutionRecord, NewReport, ReportClaim, ReportListing, ScheduleStore,
};

pub use postgres::{PostgresStore, AUDIT_RETENTION_LOCK_CLASS};
pub use sqlite::SqliteStore;

/// A thread's persisted state with the version it was written as.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: i64,
    pub state: ThreadState,
}

/// One snapshot to write: see [`StateStore::save_snapshot`].
#[derive(Debug, Clone)]
pub struct SnapshotWrite {
    pub thread: ThreadKey,
    pub expected: i64,
    pub state: ThreadState,
    /// Made by the thread's owner under this lease (several replicas): refused with
    /// [`StoreError::Fenced`] unless the ownership row still names it.
    pub fence: Option<Fence>,
}

/// One row of `query_history`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRecord {
    pub query_id: QueryId,
    pub thread: ThreadKey,
    pub user: UserId,
    pub question: String,
    pub sql: String,
    pub status: QueryStatus,
    pub duration_ms: i64,
    pub row_count: Option<i64>,
    /// The engine's or the guard's own words (for operators; never shown in a thread).
    pub error: Option<String>,
    /// What the user was shown instead.
    pub error_code: Option<ErrorCode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryStatus {
    Succeeded,
    Failed,
    Refused,
    TimedOut,
    Cancelled,
}

impl QueryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One row of `audit_logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub thread: ThreadKey,
    pub user: UserId,
    /// Slack's event id of the message the row is about (empty for a click or the terminal).
    pub event_id: String,
    /// e.g. `sql_refused`, `csv_exported`.
    pub action: String,
    /// The error table's code when the row records a refusal or failure.
    pub code: Option<ErrorCode>,
    pub detail: String,
}

/// One stored row of `audit_logs`, as `threadql audit` reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub thread: ThreadKey,
    pub user: UserId,
    /// Empty when the row is about no Slack message.
    pub event_id: String,
    pub action: String,
    /// The code as stored, kept as text: a row written before a code was renamed or retired
    /// still shows what it said.
    pub code: Option<String>,
    pub detail: String,
}

/// A question the team asked and the SQL that answered it: the first successful query of a
/// thread (later ones in the thread are refinements, which read badly out of context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredQuestion {
    pub question: String,
    pub sql: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The snapshot changed since `expected` was read: another writer got there first.
    #[error("snapshot of {thread} changed since version {expected}")]
    StaleSnapshot { thread: String, expected: i64 },
    /// The writer no longer owns the thread: another replica took it over (its lease had
    /// passed) and answers from now on.
    #[error("{thread} is owned by another replica now (this write was made under epoch {epoch})")]
    Fenced { thread: String, epoch: i64 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[async_trait]
pub trait StateStore: Send + Sync {
    async fn load_snapshot(&self, thread: &ThreadKey) -> Result<Option<Snapshot>, StoreError>;
    /// Writes `state` if the stored version is still `expected` (0 = no snapshot yet) and
    /// returns the new version; otherwise [`StoreError::StaleSnapshot`].
    async fn save_snapshot(&self, thread: &ThreadKey, expected: i64, state: &ThreadState) -> Result<i64, StoreError>;
    /// Writes several snapshots, each with the same version check as [`Self::save_snapshot`];
    /// results in input order. Stores that can do it in one round trip override this.
    /// Only stores that keep thread ownership ([`Self::ownership`]) accept fenced writes.
    async fn save_snapshots(&self, writes: &[SnapshotWrite]) -> Vec<Result<i64, StoreError>> {
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            results.push(match write.fence {
                Some(_) => Err(fencing_unsupported()),
                None => self.save_snapshot(&write.thread, write.expected, &write.state).await,
            });
        }
        results
    }
    /// [`Self::save_snapshot`] under `write.fence` when it has one (see [`SnapshotWrite::fence`]).
    async fn save_write(&self, write: SnapshotWrite) -> Result<i64, StoreError> {
        self.save_snapshots(std::slice::from_ref(&write))
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Unexpected(anyhow::anyhow!(
                    "a snapshot write went unanswered"
                )))
            })
    }
    /// Counts snapshot writes (`threadql_snapshot_*`) into `metrics` from now on. Only the
    /// batching layer every server store sits behind counts; a bare store ignores it.
    fn instrument(&self, _metrics: &crate::metrics::Metrics) {}
    /// Threads whose snapshot says a query was running: the process stopped mid-query.
    async fn threads_with_query_in_flight(&self) -> Result<Vec<ThreadKey>, StoreError>;
    async fn record_query(&self, record: &QueryRecord) -> Result<(), StoreError>;
    async fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Audit rows written at or after `since` (of `user` only, when given), oldest first, at
    /// most `limit`.
    async fn audit_rows(
        &self,
        since: DateTime<Utc>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// Deletes the audit rows written before `cutoff` and answers how many went (retention).
    async fn delete_audit_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Adds `bytes` to what each of `subjects` ("user:T1:U1", "channel:T1:C1") read on `day` and
    /// answers the new totals, in order (`bytes` 0 only reads them): the daily budgets.
    async fn charge_daily_bytes(&self, day: &str, subjects: &[String], bytes: u64) -> Result<Vec<u64>, StoreError>;
    /// Adds what the language model spent, and its explanation, to the history rows of
    /// `query_id` (recorded before with [`StateStore::record_query`]).
    async fn record_llm_usage(&self, query_id: &QueryId, usage: &LlmUsage, explanation: &str)
        -> Result<(), StoreError>;
    /// The newest answered questions, newest first, at most `limit` (few-shot examples).
    async fn answered_questions(&self, limit: usize) -> Result<Vec<AnsweredQuestion>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// The scheduled reports kept beside the threads (`None`: this store keeps none).
    fn schedules(&self) -> Option<&dyn ScheduleStore> {
        None
    }
    /// Which replica owns each thread (`None`: this store keeps no ownership; one replica).
    fn ownership(&self) -> Option<&dyn ThreadOwnership> {
        None
    }
}

/// A fenced write reached a store that keeps no ownership: a configuration error (several
/// replicas need Postgres), never silently written unfenced.
fn fencing_unsupported() -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!(
        "this state store keeps no thread ownership; several replicas need a Postgres DATABASE_URL"
    ))
}

/// Connects to `DATABASE_URL` (creating an embedded SQLite file when needed) and applies
/// pending migrations.
pub async fn connect_and_migrate(database_url: &str) -> anyhow::Result<std::sync::Arc<dyn StateStore>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let store = PostgresStore::connect(database_url).await?;
        store.migrate().await?;
        // Postgres writes a batch of snapshots in one statement...
        Ok(std::sync::Arc::new(SnapshotBatcher::new(std::sync::Arc::new(store))))
    } else {
        let store = SqliteStore::connect(database_url).await?;
        store.migrate().await?;
        // ... and SQLite in one transaction.
        Ok(std::sync::Arc::new(SnapshotBatcher::new(std::sync::Arc::new(store))))
    }
}

/// An audit row's thread key read back from its columns: every stored row was written from a
/// whole key, so a part missing means the row was tampered with or damaged, which the reader
/// should hear about rather than have the row left out.
fn stored_thread_key(id: i64, team: &str, channel: &str, thread_ts: &str) -> Result<ThreadKey, StoreError> {
    ThreadKey::parse(team, channel, thread_ts).ok_or_else(|| {
        StoreError::Unexpected(anyhow::anyhow!(
            "audit row {id} has an incomplete thread key ({team:?}, {channel:?}, {thread_ts:?})"
        ))
    })
}

fn encode_state(state: &ThreadState) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(state)
        .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("Failed to encode thread state: {e}")))
}

fn decode_state(thread: &ThreadKey, value: serde_json::Value) -> Result<ThreadState, StoreError> {
    serde_json::from_value(value)
        .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("Failed to decode the snapshot of {thread}: {e}")))
}
