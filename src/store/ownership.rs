//! Which replica owns each thread's live actor (issue 13), kept in Postgres beside the
//! snapshots so that ownership and the snapshot writes it fences are checked in one statement.
//!
//! A lease is claimed by compare-and-set and renewed in batches; `epoch` grows on every change
//! of owner. Redis locks would not do: a replica paused past its lease (a long GC, SIGSTOP, a
//! partition) could still write when it wakes, and only the storage refusing its write (a
//! fencing token, as Temporal's shard range id) keeps the thread from two writers.
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, StoreError};
use crate::domain::ThreadKey;

/// What a snapshot write was made under: the replica and the epoch of its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: String,
    pub epoch: i64,
}

/// The outcome of claiming a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This replica owns the thread under `epoch` until its lease passes.
    Owned { epoch: i64 },
    /// Another replica owns it and its lease holds: its events go to `url`.
    OwnedBy { owner: String, url: String },
}

#[async_trait]
pub trait ThreadOwnership: Send + Sync {
    /// Claims `thread` for `owner` (reachable at `url`) for `lease`: taken when the thread has
    /// no owner, its owner's lease has passed, or `owner` holds it already (renewed, same epoch).
    async fn claim(&self, thread: &ThreadKey, owner: &str, url: &str, lease: Duration) -> Result<Claim, StoreError>;
    /// Extends every lease `owner` holds by `lease` (one statement) and answers the threads it
    /// still owns: a live actor whose thread is not among them has been taken over.
    async fn renew(&self, owner: &str, lease: Duration) -> Result<Vec<ThreadKey>, StoreError>;
    /// Gives up `owner`'s leases of `threads` (an actor passivated), or all of them (`None`: a
    /// replica shutting down), so the next event's replica claims them at once. The rows stay,
    /// expired, so a thread's epoch only ever grows.
    async fn release(&self, owner: &str, threads: Option<&[ThreadKey]>) -> Result<u64, StoreError>;
    /// Threads whose owner's lease has passed (or that never had one: written by a single
    /// replica before) with work left behind: a question in flight in the snapshot (whoever
    /// claims the thread tells it the question was not answered), or messages kept in the inbox
    /// for more than a moment (whoever claims it answers them). At most `limit`.
    async fn orphaned_in_flight(&self, limit: i64) -> Result<Vec<ThreadKey>, StoreError>;
    /// Keeps messages for `thread` until they are answered (`(message ts, message)`, oldest
    /// first): written before Slack's ack, so a message survives the replica that took it and
    /// the one it was forwarded to. Answers how many were new: a message kept already (Slack's
    /// retry reaching another replica while Redis was down) is kept once.
    async fn keep(&self, thread: &ThreadKey, messages: &[(String, serde_json::Value)]) -> Result<u64, StoreError>;
    /// The messages kept for `thread` and not answered yet, oldest first (whoever claims the
    /// thread answers those it does not hold already).
    async fn pending(&self, thread: &ThreadKey) -> Result<Vec<serde_json::Value>, StoreError>;
    /// Forgets a kept message: its turn is over (answered, or found answered before).
    async fn settle(&self, thread: &ThreadKey, message_ts: &str) -> Result<(), StoreError>;
}

/// Tries of a claim that found an owner which was gone by the time it was read.
const CLAIM_TRIES: usize = 3;

#[async_trait]
impl ThreadOwnership for PostgresStore {
    async fn claim(&self, thread: &ThreadKey, owner: &str, url: &str, lease: Duration) -> Result<Claim, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        for _ in 0..CLAIM_TRIES {
            let claimed: Option<i64> = sqlx::query_scalar(
                "INSERT INTO thread_owners AS o (team_id, channel_id, thread_ts, owner, owner_url, epoch, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, 1, now() + $6 * interval '1 millisecond') \
                 ON CONFLICT (team_id, channel_id, thread_ts) DO UPDATE \
                    SET owner = EXCLUDED.owner, owner_url = EXCLUDED.owner_url, expires_at = EXCLUDED.expires_at, \
                        epoch = CASE WHEN o.owner = EXCLUDED.owner THEN o.epoch ELSE o.epoch + 1 END \
                    WHERE o.owner = EXCLUDED.owner OR o.expires_at < now() \
                 RETURNING epoch",
            )
            .bind(thread.team().as_str())
            .bind(thread.channel().as_str())
            .bind(thread.thread_ts().as_str())
            .bind(owner)
            .bind(url)
            .bind(lease_ms)
            .fetch_optional(&self.pool)
            .await
            .context("Failed to claim a thread")?;
            if let Some(epoch) = claimed {
                return Ok(Claim::Owned { epoch });
            }
            let holder = sqlx::query(
                "SELECT owner, owner_url FROM thread_owners \
                 WHERE team_id = $1 AND channel_id = $2 AND thread_ts = $3 AND expires_at >= now()",
            )
            .bind(thread.team().as_str())
            .bind(thread.channel().as_str())
            .bind(thread.thread_ts().as_str())
            .fetch_optional(&self.pool)
            .await
            .context("Failed to read a thread's owner")?;
            if let Some(row) = holder {
                return Ok(Claim::OwnedBy {
                    owner: row.get(0),
                    url: row.get(1),
                });
            }
            // Released or expired between the two statements: claim again.
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "the owner of {thread} kept changing while it was claimed"
        )))
    }

    async fn renew(&self, owner: &str, lease: Duration) -> Result<Vec<ThreadKey>, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "UPDATE thread_owners SET expires_at = now() + $2 * interval '1 millisecond' \
             WHERE owner = $1 AND expires_at >= now() RETURNING team_id, channel_id, thread_ts",
        )
        .bind(owner)
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await
        .context("Failed to renew thread leases")?;
        Ok(rows
            .iter()
            .filter_map(|row| ThreadKey::parse(row.get::<&str, _>(0), row.get::<&str, _>(1), row.get::<&str, _>(2)))
            .collect())
    }

    async fn release(&self, owner: &str, threads: Option<&[ThreadKey]>) -> Result<u64, StoreError> {
        let released = match threads {
            None => {
                sqlx::query(
                    "UPDATE thread_owners SET expires_at = now() - interval '1 millisecond' \
                 WHERE owner = $1 AND expires_at >= now()",
                )
                .bind(owner)
                .execute(&self.pool)
                .await
            }
            Some(threads) => {
                let (teams, channels, stamps) = key_columns(threads);
                sqlx::query(
                    "UPDATE thread_owners o SET expires_at = now() - interval '1 millisecond' \
                     FROM UNNEST($2::text[], $3::text[], $4::text[]) AS r(team_id, channel_id, thread_ts) \
                     WHERE o.owner = $1 AND o.expires_at >= now() AND o.team_id = r.team_id \
                       AND o.channel_id = r.channel_id AND o.thread_ts = r.thread_ts",
                )
                .bind(owner)
                .bind(&teams)
                .bind(&channels)
                .bind(&stamps)
                .execute(&self.pool)
                .await
            }
        }
        .context("Failed to release thread leases")?;
        Ok(released.rows_affected())
    }

    async fn orphaned_in_flight(&self, limit: i64) -> Result<Vec<ThreadKey>, StoreError> {
        let rows = sqlx::query(
            "(SELECT s.team_id, s.channel_id, s.thread_ts FROM thread_snapshots s \
              LEFT JOIN thread_owners o ON o.team_id = s.team_id AND o.channel_id = s.channel_id \
                AND o.thread_ts = s.thread_ts \
              WHERE s.state ? 'in_flight' AND (o.expires_at IS NULL OR o.expires_at < now())) \
             UNION \
             (SELECT i.team_id, i.channel_id, i.thread_ts FROM thread_inbox i \
              LEFT JOIN thread_owners o ON o.team_id = i.team_id AND o.channel_id = i.channel_id \
                AND o.thread_ts = i.thread_ts \
              WHERE (o.expires_at IS NULL OR o.expires_at < now()) \
                AND i.kept_at < now() - interval '2 seconds') \
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("Failed to look for threads whose replica died mid-question")?;
        Ok(rows
            .iter()
            .filter_map(|row| ThreadKey::parse(row.get::<&str, _>(0), row.get::<&str, _>(1), row.get::<&str, _>(2)))
            .collect())
    }

    async fn keep(&self, thread: &ThreadKey, messages: &[(String, serde_json::Value)]) -> Result<u64, StoreError> {
        let stamps: Vec<&str> = messages.iter().map(|(ts, _)| ts.as_str()).collect();
        let bodies: Vec<String> = messages.iter().map(|(_, message)| message.to_string()).collect();
        // Kept in order: the timestamps grow with the position in the list.
        let kept = sqlx::query(
            "INSERT INTO thread_inbox (team_id, channel_id, thread_ts, message_ts, message, kept_at) \
             SELECT $1, $2, $3, m.message_ts, m.message::jsonb, clock_timestamp() + m.position * interval '1 microsecond' \
             FROM UNNEST($4::text[], $5::text[]) WITH ORDINALITY AS m(message_ts, message, position) \
             ON CONFLICT DO NOTHING",
        )
        .bind(thread.team().as_str())
        .bind(thread.channel().as_str())
        .bind(thread.thread_ts().as_str())
        .bind(&stamps)
        .bind(&bodies)
        .execute(&self.pool)
        .await
        .context("Failed to keep messages for a thread")?;
        Ok(kept.rows_affected())
    }

    async fn pending(&self, thread: &ThreadKey) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT message FROM thread_inbox WHERE team_id = $1 AND channel_id = $2 AND thread_ts = $3 \
             ORDER BY kept_at",
        )
        .bind(thread.team().as_str())
        .bind(thread.channel().as_str())
        .bind(thread.thread_ts().as_str())
        .fetch_all(&self.pool)
        .await
        .context("Failed to read the messages kept for a thread")?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn settle(&self, thread: &ThreadKey, message_ts: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM thread_inbox WHERE team_id = $1 AND channel_id = $2 AND thread_ts = $3 AND message_ts = $4",
        )
        .bind(thread.team().as_str())
        .bind(thread.channel().as_str())
        .bind(thread.thread_ts().as_str())
        .bind(message_ts)
        .execute(&self.pool)
        .await
        .context("Failed to forget an answered message")?;
        Ok(())
    }
}

/// Runs of the orphan sweep find at most this many threads each (the next run finds the rest).
pub const ORPHANS_PER_SWEEP: i64 = 500;

/// The key columns of `threads`, for `UNNEST`.
pub(super) fn key_columns(threads: &[ThreadKey]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut columns = (
        Vec::with_capacity(threads.len()),
        Vec::with_capacity(threads.len()),
        Vec::with_capacity(threads.len()),
    );
    for thread in threads {
        columns.0.push(thread.team().to_string());
        columns.1.push(thread.channel().to_string());
        columns.2.push(thread.thread_ts().to_string());
    }
    columns
}
