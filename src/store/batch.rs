//! Batches snapshot writes: thread actors' saves that arrive while a write is under way go
//! out together in the next one (one round trip for many threads under load, no added
//! latency when idle). Every other call passes straight through.
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use chrono::{DateTime, Utc};

use super::{
    AnsweredQuestion, AuditRecord, AuditRow, LlmUsage, QueryRecord, Snapshot, SnapshotWrite, StateStore, StoreError,
};
use crate::domain::{QueryId, ThreadKey, ThreadState};
use crate::metrics::Metrics;

/// Most snapshots written in one statement.
const MAX_BATCH: usize = 512;

type Pending = (SnapshotWrite, oneshot::Sender<Result<i64, StoreError>>);

/// A [`StateStore`] whose `save_snapshot` calls are batched by a background task.
pub struct SnapshotBatcher {
    inner: Arc<dyn StateStore>,
    writes: mpsc::UnboundedSender<Pending>,
    /// Set once by [`StateStore::instrument`]; the writer task counts into it from then on.
    metrics: Arc<OnceLock<Metrics>>,
}

impl SnapshotBatcher {
    /// Wraps `inner`; spawns the writer task on the current Tokio runtime.
    pub fn new(inner: Arc<dyn StateStore>) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        let metrics = Arc::new(OnceLock::new());
        tokio::spawn(write_batches(inner.clone(), queue, metrics.clone()));
        Self { inner, writes, metrics }
    }
}

/// Counts one batch of snapshot writes: its size, how long it took, each write's outcome.
fn observe_batch(metrics: &OnceLock<Metrics>, started: Instant, results: &[Result<i64, StoreError>]) {
    let Some(metrics) = metrics.get() else { return };
    metrics.snapshot_batch_size.observe(results.len() as f64);
    metrics.snapshot_write_seconds.observe(started.elapsed().as_secs_f64());
    for result in results {
        let outcome = match result {
            Ok(_) => "saved",
            Err(StoreError::StaleSnapshot { .. }) => "stale",
            Err(StoreError::Fenced { .. }) => "fenced",
            Err(StoreError::Unexpected(_)) => "failed",
        };
        metrics.snapshot_writes.with_label_values(&[outcome]).inc();
    }
}

async fn write_batches(
    store: Arc<dyn StateStore>,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    metrics: Arc<OnceLock<Metrics>>,
) {
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match queue.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut batch = vec![first];
        // Everything already waiting joins, except a second write of the same thread (one
        // statement cannot update a row twice): that one starts the next batch.
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(pending) if batch.iter().any(|(w, _)| w.thread == pending.0.thread) => {
                    carried = Some(pending);
                    break;
                }
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<SnapshotWrite>, Vec<_>) = batch.into_iter().unzip();
        let started = Instant::now();
        let results = store.save_snapshots(&writes).await;
        observe_batch(&metrics, started, &results);
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that went away no longer needs its answer.
            let _ = reply.send(result);
        }
    }
}

#[async_trait]
impl StateStore for SnapshotBatcher {
    async fn load_snapshot(&self, thread: &ThreadKey) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(thread).await
    }

    async fn save_snapshot(&self, thread: &ThreadKey, expected: i64, state: &ThreadState) -> Result<i64, StoreError> {
        self.save_write(SnapshotWrite {
            thread: thread.clone(),
            expected,
            state: state.clone(),
            fence: None,
        })
        .await
    }

    async fn save_write(&self, write: SnapshotWrite) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((write, _))) = self.writes.send((write, reply)) {
            let started = Instant::now();
            let result = self.inner.save_write(write).await;
            observe_batch(&self.metrics, started, std::slice::from_ref(&result));
            return result;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unexpected(anyhow::anyhow!("the snapshot writer stopped"))))
    }

    async fn save_snapshots(&self, writes: &[SnapshotWrite]) -> Vec<Result<i64, StoreError>> {
        self.inner.save_snapshots(writes).await
    }

    fn instrument(&self, metrics: &Metrics) {
        // A second call (a second server over the same store) keeps the first registry.
        let _ = self.metrics.set(metrics.clone());
    }

    async fn threads_with_query_in_flight(&self) -> Result<Vec<ThreadKey>, StoreError> {
        self.inner.threads_with_query_in_flight().await
    }

    async fn record_query(&self, record: &QueryRecord) -> Result<(), StoreError> {
        self.inner.record_query(record).await
    }

    async fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.inner.record_audit(record).await
    }

    async fn audit_rows(
        &self,
        since: DateTime<Utc>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.inner.audit_rows(since, user, limit).await
    }

    async fn delete_audit_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.delete_audit_before(cutoff).await
    }

    async fn charge_daily_bytes(&self, day: &str, subjects: &[String], bytes: u64) -> Result<Vec<u64>, StoreError> {
        self.inner.charge_daily_bytes(day, subjects, bytes).await
    }

    async fn record_llm_usage(
        &self,
        query_id: &QueryId,
        usage: &LlmUsage,
        explanation: &str,
    ) -> Result<(), StoreError> {
        self.inner.record_llm_usage(query_id, usage, explanation).await
    }

    async fn answered_questions(&self, limit: usize) -> Result<Vec<AnsweredQuestion>, StoreError> {
        self.inner.answered_questions(limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn schedules(&self) -> Option<&dyn super::ScheduleStore> {
        self.inner.schedules()
    }

    fn ownership(&self) -> Option<&dyn super::ThreadOwnership> {
        self.inner.ownership()
    }
}
