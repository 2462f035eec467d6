//! Postgres state store.
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

use chrono::{DateTime, Utc};

use super::{
    decode_state, encode_state, stored_thread_key, AnsweredQuestion, AuditRecord, AuditRow, QueryRecord, Snapshot,
    SnapshotWrite, StateStore, StoreError,
};
use crate::domain::{ErrorCode, LlmUsage, QueryId};
use crate::domain::{ThreadKey, ThreadState};

pub struct PostgresStore {
    pub(super) pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            // A broken connection fails its query and is replaced; pinging before every
            // query cost ~10 % of the CPU of a turn in the benchmark.
            .test_before_acquire(false)
            // Idle connections go back to the server: a quiet deployment holds few.
            .idle_timeout(Duration::from_secs(60))
            .connect(url)
            .await
            .context("Failed to connect to the Postgres state store (DATABASE_URL)")?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .context("Failed to apply Postgres migrations")
    }

    /// The owner and epoch of each of `writes`' threads that has an ownership row.
    async fn owners_of(
        &self,
        writes: &[&SnapshotWrite],
    ) -> Result<std::collections::HashMap<(String, String, String), (String, i64)>, StoreError> {
        if writes.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let threads: Vec<ThreadKey> = writes.iter().map(|write| write.thread.clone()).collect();
        let (teams, channels, stamps) = super::ownership::key_columns(&threads);
        let rows = sqlx::query(
            "SELECT o.team_id, o.channel_id, o.thread_ts, o.owner, o.epoch FROM thread_owners o \
             JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS r(team_id, channel_id, thread_ts) \
               ON o.team_id = r.team_id AND o.channel_id = r.channel_id AND o.thread_ts = r.thread_ts",
        )
        .bind(&teams)
        .bind(&channels)
        .bind(&stamps)
        .fetch_all(&self.pool)
        .await
        .context("Failed to read thread owners")?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    (row.get(0), row.get(1), row.get(2)),
                    (row.get::<String, _>(3), row.get::<i64, _>(4)),
                )
            })
            .collect())
    }
}

/// A thread key as the three text columns rows come back with.
fn key_of(thread: &ThreadKey) -> (String, String, String) {
    (
        thread.team().to_string(),
        thread.channel().to_string(),
        thread.thread_ts().to_string(),
    )
}

#[async_trait]
impl StateStore for PostgresStore {
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
        // A new thread inserts version 1; an existing one moves on only from the version it was
        // read at, so a writer holding an older snapshot can never overwrite a newer one.
        let version: Option<i64> = if expected == 0 {
            sqlx::query_scalar(
                "INSERT INTO thread_snapshots (team_id, channel_id, thread_ts, version, state) \
                 VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING RETURNING version",
            )
            .bind(thread.team().as_str())
            .bind(thread.channel().as_str())
            .bind(thread.thread_ts().as_str())
            .bind(&state)
            .fetch_optional(&self.pool)
            .await
        } else {
            sqlx::query_scalar(
                "UPDATE thread_snapshots SET version = version + 1, state = $5, updated_at = now() \
                 WHERE team_id = $1 AND channel_id = $2 AND thread_ts = $3 AND version = $4 RETURNING version",
            )
            .bind(thread.team().as_str())
            .bind(thread.channel().as_str())
            .bind(thread.thread_ts().as_str())
            .bind(expected)
            .bind(&state)
            .fetch_optional(&self.pool)
            .await
        }
        .context("Failed to save a thread snapshot")?;
        version.ok_or_else(|| StoreError::StaleSnapshot {
            thread: thread.to_string(),
            expected,
        })
    }

    async fn save_snapshots(&self, writes: &[SnapshotWrite]) -> Vec<Result<i64, StoreError>> {
        // One statement for the batch. Each row still moves on only from the version it was
        // read at: a new thread inserts version 1, a row whose version differs is left alone
        // and reported stale. A fenced write goes through only while the thread's ownership
        // row names its writer with its epoch; that row is locked (FOR SHARE) by the same
        // statement, so a replica taking the thread over waits for the write, and reads the
        // snapshot after it.
        let mut teams = Vec::with_capacity(writes.len());
        let mut channels = Vec::with_capacity(writes.len());
        let mut threads = Vec::with_capacity(writes.len());
        let mut expected = Vec::with_capacity(writes.len());
        let mut states = Vec::with_capacity(writes.len());
        let mut owners: Vec<Option<String>> = Vec::with_capacity(writes.len());
        let mut epochs: Vec<Option<i64>> = Vec::with_capacity(writes.len());
        for write in writes {
            match encode_state(&write.state) {
                Ok(state) => states.push(state.to_string()),
                Err(error) => {
                    return writes
                        .iter()
                        .map(|_| Err(StoreError::Unexpected(anyhow::anyhow!("{error}"))))
                        .collect()
                }
            }
            teams.push(write.thread.team().to_string());
            channels.push(write.thread.channel().to_string());
            threads.push(write.thread.thread_ts().to_string());
            expected.push(write.expected);
            owners.push(write.fence.as_ref().map(|fence| fence.owner.clone()));
            epochs.push(write.fence.as_ref().map(|fence| fence.epoch));
        }
        let written = sqlx::query(
            "WITH i AS ( \
                SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
                                     $7::bigint[]) AS i(team_id, channel_id, thread_ts, expected, state, owner, epoch) \
             ), still_owned AS ( \
                SELECT o.team_id, o.channel_id, o.thread_ts FROM thread_owners o \
                JOIN i ON o.team_id = i.team_id AND o.channel_id = i.channel_id AND o.thread_ts = i.thread_ts \
                WHERE o.owner = i.owner AND o.epoch = i.epoch \
                FOR SHARE OF o \
             ) \
             INSERT INTO thread_snapshots AS s (team_id, channel_id, thread_ts, version, state) \
             SELECT i.team_id, i.channel_id, i.thread_ts, i.expected + 1, i.state::jsonb FROM i \
             WHERE i.owner IS NULL OR EXISTS ( \
                SELECT 1 FROM still_owned f \
                WHERE f.team_id = i.team_id AND f.channel_id = i.channel_id AND f.thread_ts = i.thread_ts) \
             ON CONFLICT (team_id, channel_id, thread_ts) DO UPDATE \
                SET version = EXCLUDED.version, state = EXCLUDED.state, updated_at = now() \
                WHERE s.version = EXCLUDED.version - 1 \
             RETURNING team_id, channel_id, thread_ts, version",
        )
        .bind(&teams)
        .bind(&channels)
        .bind(&threads)
        .bind(&expected)
        .bind(&states)
        .bind(&owners)
        .bind(&epochs)
        .fetch_all(&self.pool)
        .await;
        let rows = match written {
            Ok(rows) => rows,
            Err(error) => {
                let message = format!("Failed to save {} thread snapshots: {error}", writes.len());
                return writes
                    .iter()
                    .map(|_| Err(StoreError::Unexpected(anyhow::anyhow!(message.clone()))))
                    .collect();
            }
        };
        let mut versions = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let key = (
                row.get::<String, _>(0),
                row.get::<String, _>(1),
                row.get::<String, _>(2),
            );
            versions.insert(key, row.get::<i64, _>(3));
        }
        // A fenced write that was refused: stale, or no longer its writer's?
        let refused_fenced: Vec<&SnapshotWrite> = writes
            .iter()
            .filter(|write| write.fence.is_some() && !versions.contains_key(&key_of(&write.thread)))
            .collect();
        let owners_now = match self.owners_of(&refused_fenced).await {
            Ok(owners) => owners,
            Err(error) => {
                tracing::warn!(
                    ?error,
                    "Failed to read who owns the threads whose fenced writes were refused"
                );
                std::collections::HashMap::new()
            }
        };
        writes
            .iter()
            .map(|write| {
                let key = key_of(&write.thread);
                if let Some(version) = versions.get(&key) {
                    return Ok(*version);
                }
                match &write.fence {
                    Some(fence) if owners_now.get(&key) != Some(&(fence.owner.clone(), fence.epoch)) => {
                        Err(StoreError::Fenced {
                            thread: write.thread.to_string(),
                            epoch: fence.epoch,
                        })
                    }
                    _ => Err(StoreError::StaleSnapshot {
                        thread: write.thread.to_string(),
                        expected: write.expected,
                    }),
                }
            })
            .collect()
    }

    async fn threads_with_query_in_flight(&self) -> Result<Vec<ThreadKey>, StoreError> {
        let rows = sqlx::query("SELECT team_id, channel_id, thread_ts FROM thread_snapshots WHERE state ? 'in_flight'")
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
        let mut query = sqlx::query(sql).bind(since);
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
                    created_at: row.try_get("created_at").context("Failed to read an audit row")?,
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
        // One replica at a time: the others' passes find the lock taken and delete nothing,
        // rather than queue on the same rows' locks.
        let mut transaction = self.pool.begin().await.context("Failed to delete old audit rows")?;
        let claimed: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, 1)")
            .bind(AUDIT_RETENTION_LOCK_CLASS)
            .fetch_one(&mut *transaction)
            .await
            .context("Failed to claim the deletion of old audit rows")?;
        if !claimed {
            return Ok(0);
        }
        let deleted = sqlx::query("DELETE FROM audit_logs WHERE created_at < $1")
            .bind(cutoff)
            .execute(&mut *transaction)
            .await
            .context("Failed to delete old audit rows")?;
        transaction.commit().await.context("Failed to delete old audit rows")?;
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

    fn ownership(&self) -> Option<&dyn super::ThreadOwnership> {
        Some(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("Failed to reach the Postgres state store")?;
        Ok(())
    }
}

/// The advisory lock class (`pg_try_advisory_xact_lock(class, 1)`) of the audit clean-up, claimed
/// by one replica per pass.
pub const AUDIT_RETENTION_LOCK_CLASS: i32 = 0x4155_4454;
