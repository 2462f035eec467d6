//! Retention of the audit trail: rows older than `THREADQL_AUDIT_RETENTION_DAYS` are deleted
//! once at start and then every hour, by whichever server runs (deleting is idempotent, so
//! several replicas doing it do no harm).
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{StateStore, StoreError};
use crate::metrics::Metrics;

/// How often expired audit rows are looked for. Retention is counted in days, so an hour late
/// is close enough, and each pass deletes at most an hour's rows.
pub const AUDIT_RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// Deletes the audit rows older than `retention_days` before `now` (0 keeps every row) and
/// answers how many went.
pub async fn delete_expired_audit_rows(
    store: &dyn StateStore,
    retention_days: u32,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = now - chrono::Duration::days(i64::from(retention_days));
    store.delete_audit_before(cutoff).await
}

/// The periodic job around [`delete_expired_audit_rows`].
pub struct AuditRetention {
    store: Arc<dyn StateStore>,
    retention_days: u32,
    metrics: Metrics,
}

impl AuditRetention {
    pub fn new(store: Arc<dyn StateStore>, retention_days: u32, metrics: Metrics) -> Self {
        Self {
            store,
            retention_days,
            metrics,
        }
    }

    /// One pass: deletes what expired by `now`, logs and counts it
    /// (`threadql_audit_rows_deleted_total`).
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted = delete_expired_audit_rows(self.store.as_ref(), self.retention_days, now).await?;
        self.metrics.audit_rows_deleted.inc_by(deleted);
        if deleted > 0 {
            tracing::info!(
                deleted,
                retention_days = self.retention_days,
                "Deleted audit rows past their retention"
            );
        }
        Ok(deleted)
    }

    /// Runs a pass now and every [`AUDIT_RETENTION_EVERY`] until `stop`. Does nothing when
    /// rows are kept forever.
    pub fn spawn(self, stop: CancellationToken) {
        if self.retention_days == 0 {
            return;
        }
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(AUDIT_RETENTION_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    // The first tick is immediate: the pass at start.
                    _ = ticker.tick() => {}
                }
                // A failed pass is retried at the next tick; the rows are still there.
                if let Err(error) = self.run_once(Utc::now()).await {
                    tracing::warn!(?error, "Failed to delete audit rows past their retention");
                }
            }
        });
    }
}
