//! SQLite state store.
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use chrono::{DateTime, Utc};

use super::{
    decode_state, encode_state, stored_thread_key, AnsweredQuestion, AuditRecord, AuditRow, QueryRecord, Snapshot,
    SnapshotWrite, StateStore, StoreError,
};
use crate::domain::{ErrorCode, LlmUsage, QueryId};
use crate::domain::{ThreadKey, ThreadState};

pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("DATABASE_URL is not a valid sqlite: URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            // Idle connections go back to the server: a quiet deployment holds few.
            .idle_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await
            .context("Failed to connect to the SQLite state store (DATABASE_URL)")?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .context("Failed to apply SQLite migrations")
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn load_snapshot(&self, thread: &ThreadKey) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT version, state FROM thread_snapshots WHERE team_id = $1 AND channel_id = $2 AND thread_ts = $3",
        )
        .bind(thread.team().as_str())
        .bind(thread.channel().as_str())
        .bind(thread.thread_ts().as_str())
        .fetch_optional(&self.pool)
        .await
        .context("Failed to load a thread snapshot")?;
        match row {
            None => Ok(None),
            Some(row) => {
                let version: i64 = row.try_get("version").context("Failed to read snapshot version")?;
                let state: serde_json::Value = row.try_get("state").context("Failed to read snapshot state")?;
                Ok(Some(Snapshot {
                    version,
                    state: decode_state(thread, state)?,
                }))
            }
        }
    }

    async fn save_snapshot(&self, thread: &ThreadKey, expected: i64, state: &ThreadState) -> Result<i64, StoreError> {
        let state = encode_state(state)?;
        let mut connection = self.pool.acquire().await.context("Failed to save a thread snapshot")?;
        write_snapshot(&mut connection, thread, expected, &state).await
    }

    async fn save_snapshots(&self, writes: &[SnapshotWrite]) -> Vec<Result<i64, StoreError>> {
        // One transaction for the batch: SQLite has a single writer, so one commit for many
        // threads instead of a lock, a commit and a WAL sync each.
        let batch = async {
            let mut transaction = self.pool.begin().await?;
            let mut results = Vec::with_capacity(writes.len());
            for write in writes {
                let result = match (&write.fence, encode_state(&write.state)) {
                    // One process owns every thread of an embedded store: nothing to fence with.
                    (Some(_), _) => Err(super::fencing_unsupported()),
                    (None, Ok(state)) => write_snapshot(&mut transaction, &write.thread, write.expected, &state).await,
                    (None, Err(error)) => Err(error),
                };
                results.push(result);
            }
            transaction.commit().await?;
            Ok::<_, sqlx::Error>(results)
        };
        match batch.await {
            Ok(results) => results,
            Err(error) => writes
                .iter()
                .map(|_| {
                    Err(StoreError::Unexpected(anyhow::anyhow!(
                        "Failed to save thread snapshots: {error}"
                    )))
                })
                .collect(),
        }
    }

    async fn threads_with_query_in_flight(&self) -> Result<Vec<ThreadKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT team_id, channel_id, thread_ts FROM thread_snapshots WHERE json_extract(state, '$.in_flight') IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .context("Failed to list threads with a query in flight")?;
        Ok(rows
            .iter()
            .filter_map(|row| ThreadKey::parse(row.get::<&str, _>(0), row.get::<&str, _>(1), row.get::<&str, _>(2)))
            .collect())
    }

    async fn record_query(&self, record: &QueryRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO query_history (query_id, team_id, channel_id, thread_ts, user_id, question, sql, status, \
             duration_ms, row_count, error, error_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(record.query_id.as_str())
        .bind(record.thread.team().as_str())
        .bind(record.thread.channel().as_str())
        .bind(record.thread.thread_ts().as_str())
        .bind(record.user.as_str())
        .bind(&record.question)
        .bind(&record.sql)
        .bind(record.status.as_str())
        .bind(record.duration_ms)
        .bind(record.row_count)
        .bind(&record.error)
        .bind(record.error_code.map(ErrorCode::code))
        .execute(&self.pool)
        .await
        .context("Failed to record query history")?;
        Ok(())
    }

    async fn record_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_logs (team_id, channel_id, thread_ts, user_id, action, detail, code, event_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(record.thread.team().as_str())
        .bind(record.thread.channel().as_str())
        .bind(record.thread.thread_ts().as_str())
        .bind(record.user.as_str())
        .bind(&record.action)
        .bind(&record.detail)
        .bind(record.code.map(ErrorCode::code))
        .bind(&record.event_id)
        .execute(&self.pool)
        .await
        .context("Failed to record an audit row")?;
        Ok(())
    }

    async fn audit_rows(
        &self,
        since: DateTime<Utc>,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRow>, StoreError> {
        // Two statements rather than `$2 IS NULL OR user_id = $2`, so the one with a user is
        // planned on the (user_id, created_at) index.
        let sql = match user {
            Some(_) => {
                "SELECT id, created_at, team_id, channel_id, thread_ts, user_id, event_id, action, code, detail \
                 FROM audit_logs WHERE created_at >= $1 AND user_id = $2 ORDER BY created_at, id LIMIT $3"
            }
            None => {
                "SELECT id, created_at, team_id, channel_id, thread_ts, user_id, event_id, action, code, detail \
                 FROM audit_logs WHERE created_at >= $1 ORDER BY created_at, id LIMIT $2"
            }
        };
        let mut query = sqlx::query(sql).bind(sqlite_timestamp(since));
        if let Some(user) = user {
            query = query.bind(user);
        }
        query = query.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = query.fetch_all(&self.pool).await.context("Failed to read audit rows")?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id").context("Failed to read an audit row")?;
                let thread = stored_thread_key(
                    id,
                    row.try_get("team_id").context("Failed to read an audit row")?,
                    row.try_get("channel_id").context("Failed to read an audit row")?,
                    row.try_get("thread_ts").context("Failed to read an audit row")?,
                )?;
                Ok(AuditRow {
                    id,
                    created_at: parse_sqlite_timestamp(
                        id,
                        row.try_get("created_at").context("Failed to read an audit row")?,
                    )?,
                    thread,
                    user: row
                        .try_get::<String, _>("user_id")
                        .context("Failed to read an audit row")?
                        .into(),
                    event_id: row.try_get("event_id").context("Failed to read an audit row")?,
                    action: row.try_get("action").context("Failed to read an audit row")?,
                    code: row.try_get("code").context("Failed to read an audit row")?,
                    detail: row.try_get("detail").context("Failed to read an audit row")?,
                })
            })
            .collect()
    }

    async fn delete_audit_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM audit_logs WHERE created_at < $1")
            .bind(sqlite_timestamp(cutoff))
            .execute(&self.pool)
            .await
            .context("Failed to delete old audit rows")?;
        Ok(deleted.rows_affected())
    }

    async fn charge_daily_bytes(&self, day: &str, subjects: &[String], bytes: u64) -> Result<Vec<u64>, StoreError> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let mut totals = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let total: i64 = sqlx::query_scalar(
                "INSERT INTO warehouse_usage (day, subject, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (day, subject) DO UPDATE SET bytes = warehouse_usage.bytes + excluded.bytes \
                 RETURNING bytes",
            )
            .bind(day)
            .bind(subject)
            .bind(bytes)
            .fetch_one(&self.pool)
            .await
            .context("Failed to charge the daily byte budget")?;
            totals.push(u64::try_from(total).unwrap_or(0));
        }
        Ok(totals)
    }

    async fn record_llm_usage(
        &self,
        query_id: &QueryId,
        usage: &LlmUsage,
        explanation: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE query_history SET prompt_tokens = $2, completion_tokens = $3, llm_attempts = $4, \
             llm_latency_ms = $5, llm_model = $6, explanation = $7 WHERE query_id = $1",
        )
        .bind(query_id.as_str())
        .bind(i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX))
        .bind(i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX))
        .bind(i64::from(usage.attempts))
        .bind(i64::try_from(usage.latency_ms).unwrap_or(i64::MAX))
        .bind(&usage.model)
        .bind(explanation)
        .execute(&self.pool)
        .await
        .context("Failed to record language model usage")?;
        Ok(())
    }

    async fn answered_questions(&self, limit: usize) -> Result<Vec<AnsweredQuestion>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT question, sql FROM query_history WHERE id IN (\
               SELECT MIN(id) FROM query_history WHERE status = 'succeeded' \
               GROUP BY team_id, channel_id, thread_ts) \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .context("Failed to read answered questions")?;
        Ok(rows
            .into_iter()
            .map(|(question, sql)| AnsweredQuestion { question, sql })
            .collect())
    }

    fn schedules(&self) -> Option<&dyn super::ScheduleStore> {
        Some(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("Failed to reach the SQLite state store")?;
        Ok(())
    }
}

/// A new thread inserts version 1; an existing one moves on only from the version it was read
/// at, so a writer holding an older snapshot can never overwrite a newer one.
async fn write_snapshot(
    connection: &mut SqliteConnection,
    thread: &ThreadKey,
    expected: i64,
    state: &serde_json::Value,
) -> Result<i64, StoreError> {
    let version: Option<i64> = if expected == 0 {
        sqlx::query_scalar(
            "INSERT INTO thread_snapshots (team_id, channel_id, thread_ts, version, state) \
             VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING RETURNING version",
        )
        .bind(thread.team().as_str())
        .bind(thread.channel().as_str())
        .bind(thread.thread_ts().as_str())
        .bind(state)
        .fetch_optional(&mut *connection)
        .await
    } else {
        sqlx::query_scalar(
            "UPDATE thread_snapshots SET version = version + 1, state = $5, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE team_id = $1 AND channel_id = $2 AND thread_ts = $3 AND version = $4 RETURNING version",
        )
        .bind(thread.team().as_str())
        .bind(thread.channel().as_str())
        .bind(thread.thread_ts().as_str())
        .bind(expected)
        .bind(state)
        .fetch_optional(&mut *connection)
        .await
    }
    .context("Failed to save a thread snapshot")?;
    version.ok_or_else(|| StoreError::StaleSnapshot {
        thread: thread.to_string(),
        expected,
    })
}

/// `created_at` as SQLite writes it (`strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`: UTC, milliseconds,
/// a `Z`). Timestamps are stored as text, so a bound time compares correctly only when it is
/// written the same way, to the same width.
pub(super) fn sqlite_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_sqlite_timestamp(id: i64, text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| {
            StoreError::Unexpected(anyhow::anyhow!(
                "audit row {id} has an unreadable created_at {text:?}: {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bound_timestamps_are_written_as_sqlite_writes_created_at() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T09:08:07.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(sqlite_timestamp(at), "2026-12-05T09:08:07.500Z");
        assert_eq!(parse_sqlite_timestamp(1, "2026-12-05T09:08:07.500Z").unwrap(), at);
    }
}
