//! Scheduled reports in Postgres: due reports are claimed with `FOR UPDATE SKIP LOCKED`, so
//! replicas polling at once each take different reports, and the unique (report, fire time)
//! key refuses a second run of the same fire time whatever happens.
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use super::schedules::{
    encode_json, encode_report, plan_report, read_execution, read_report, ExecutionEnd, ExecutionRecord, NewReport,
    ReportClaim, ReportListing, ScheduleStore, REPORT_COLUMNS,
};
use super::{PostgresStore, StoreError};
use crate::domain::{ErrorCode, ExecutionStatus, ReportState, Schedule, ScheduledReport};

impl PostgresStore {
    async fn insert_run(
        transaction: &mut Transaction<'_, Postgres>,
        report: &ScheduledReport,
        fire_at: DateTime<Utc>,
        missed: u32,
        replica: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ReportClaim>, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO report_executions (report_id, fire_at, status, attempts, missed, claimed_by, lease_until) \
             VALUES ($1, $2, 'running', 1, $3, $4, $5) ON CONFLICT (report_id, fire_at) DO NOTHING RETURNING id",
        )
        .bind(report.id)
        .bind(fire_at)
        .bind(missed as i32)
        .bind(replica)
        .bind(lease_until)
        .fetch_optional(&mut **transaction)
        .await
        .context("Failed to claim a report run")?;
        Ok(inserted.map(|row| ReportClaim {
            execution_id: row.get("id"),
            fire_at,
            attempt: 1,
            missed,
            posted: None,
            report: report.clone(),
        }))
    }
}

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn create_report(&self, new: &NewReport) -> Result<ScheduledReport, StoreError> {
        let encoded = encode_report(new)?;
        let row = sqlx::query(&format!(
            "INSERT INTO scheduled_reports AS r (team_id, channel_id, thread_ts, owner_id, question, query, cron, \
             timezone, destination, options, alert, next_fire_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {REPORT_COLUMNS}"
        ))
        .bind(new.origin.team().as_str())
        .bind(new.origin.channel().as_str())
        .bind(new.origin.thread_ts().as_str())
        .bind(new.owner.as_str())
        .bind(&new.question)
        .bind(encoded.query)
        .bind(&new.schedule.cron)
        .bind(new.schedule.timezone.name())
        .bind(encoded.destination)
        .bind(encoded.options)
        .bind(encoded.alert)
        .bind(new.next_fire_at)
        .fetch_one(&self.pool)
        .await
        .context("Failed to store a scheduled report")?;
        read_report(&row)
    }

    async fn report(&self, id: i64) -> Result<Option<ScheduledReport>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM scheduled_reports r WHERE r.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .context("Failed to read a scheduled report")?;
        row.as_ref().map(read_report).transpose()
    }

    async fn reports(&self, team: Option<&str>, owner: Option<&str>) -> Result<Vec<ReportListing>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS}, last.status AS last_status, last.fire_at AS last_fire_at \
             FROM scheduled_reports r LEFT JOIN LATERAL ( \
                 SELECT status, fire_at FROM report_executions e WHERE e.report_id = r.id \
                 ORDER BY e.fire_at DESC LIMIT 1) last ON true \
             WHERE ($1::text IS NULL OR r.team_id = $1) AND ($2::text IS NULL OR r.owner_id = $2) ORDER BY r.id"
        ))
        .bind(team)
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .context("Failed to list scheduled reports")?;
        rows.iter()
            .map(|row| {
                let status: Option<String> = row.try_get("last_status").context("Failed to read a report run")?;
                Ok(ReportListing {
                    report: read_report(row)?,
                    last_status: status.as_deref().and_then(ExecutionStatus::parse),
                    last_fire_at: row.try_get("last_fire_at").context("Failed to read a report run")?,
                })
            })
            .collect()
    }

    async fn update_report(
        &self,
        id: i64,
        state: &ReportState,
        schedule: &Schedule,
        next_fire_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let reason = match state {
            ReportState::Paused { reason } => reason.clone(),
            ReportState::Active => None,
        };
        let updated = sqlx::query(
            "UPDATE scheduled_reports SET state = $2, paused_reason = $3, cron = $4, timezone = $5, \
             destination = $6, options = $7, next_fire_at = $8, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(reason)
        .bind(&schedule.cron)
        .bind(schedule.timezone.name())
        .bind(encode_json(&schedule.destination)?)
        .bind(encode_json(&schedule.options)?)
        .bind(next_fire_at)
        .execute(&self.pool)
        .await
        .context("Failed to update a scheduled report")?;
        Ok(updated.rows_affected() == 1)
    }

    async fn delete_report(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM scheduled_reports WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .context("Failed to delete a scheduled report")?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        replica: &str,
        lease: chrono::Duration,
        limit: usize,
    ) -> Result<Vec<ReportClaim>, StoreError> {
        let lease_until = now + lease;
        let mut transaction = self
            .pool
            .begin()
            .await
            .context("Failed to start claiming report runs")?;
        let due = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM scheduled_reports r WHERE r.state = 'active' AND r.next_fire_at <= $1 \
             ORDER BY r.next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *transaction)
        .await
        .context("Failed to find due scheduled reports")?;
        let mut claims = Vec::new();
        for row in &due {
            let report = read_report(row)?;
            let (plan, next) = plan_report(&report, now);
            for missed in &plan.missed {
                sqlx::query(
                    "INSERT INTO report_executions (report_id, fire_at, status, claimed_by, finished_at) \
                     VALUES ($1, $2, 'missed', $3, $4) ON CONFLICT (report_id, fire_at) DO NOTHING",
                )
                .bind(report.id)
                .bind(missed)
                .bind(replica)
                .bind(now)
                .execute(&mut *transaction)
                .await
                .context("Failed to record a missed report run")?;
            }
            for (fire_at, missed) in &plan.run {
                if let Some(claim) =
                    Self::insert_run(&mut transaction, &report, *fire_at, *missed, replica, lease_until).await?
                {
                    claims.push(claim);
                }
            }
            sqlx::query("UPDATE scheduled_reports SET next_fire_at = $2, updated_at = now() WHERE id = $1")
                .bind(report.id)
                .bind(next)
                .execute(&mut *transaction)
                .await
                .context("Failed to move a scheduled report on")?;
        }
        // Tries due again, and runs whose replica stopped renewing its lease.
        let again = sqlx::query(
            "SELECT e.id, e.report_id, e.fire_at, e.attempts, e.missed, e.slack_channel, e.slack_ts \
             FROM report_executions e JOIN scheduled_reports r ON r.id = e.report_id \
             WHERE r.state = 'active' AND ((e.status = 'retrying' AND e.retry_at <= $1) \
                OR (e.status = 'running' AND e.lease_until < $1)) \
             ORDER BY e.fire_at LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *transaction)
        .await
        .context("Failed to find report runs to try again")?;
        for row in &again {
            let execution_id: i64 = row.get("id");
            let report_id: i64 = row.get("report_id");
            let attempts: i32 = row.get("attempts");
            sqlx::query(
                "UPDATE report_executions SET status = 'running', attempts = attempts + 1, claimed_by = $2, \
                 lease_until = $3, retry_at = NULL WHERE id = $1",
            )
            .bind(execution_id)
            .bind(replica)
            .bind(lease_until)
            .execute(&mut *transaction)
            .await
            .context("Failed to claim a report run again")?;
            let report = sqlx::query(&format!(
                "SELECT {REPORT_COLUMNS} FROM scheduled_reports r WHERE r.id = $1"
            ))
            .bind(report_id)
            .fetch_one(&mut *transaction)
            .await
            .context("Failed to read a scheduled report")?;
            let channel: Option<String> = row.get("slack_channel");
            let ts: Option<String> = row.get("slack_ts");
            claims.push(ReportClaim {
                execution_id,
                fire_at: row.get("fire_at"),
                attempt: attempts.max(0) as u32 + 1,
                missed: row.get::<i32, _>("missed").max(0) as u32,
                posted: channel.zip(ts),
                report: read_report(&report)?,
            });
        }
        transaction.commit().await.context("Failed to claim report runs")?;
        Ok(claims)
    }

    async fn claim_now(
        &self,
        id: i64,
        now: DateTime<Utc>,
        replica: &str,
        lease: chrono::Duration,
    ) -> Result<Option<ReportClaim>, StoreError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .context("Failed to start claiming a report run")?;
        let row = sqlx::query(&format!(
            "SELECT {REPORT_COLUMNS} FROM scheduled_reports r WHERE r.id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *transaction)
        .await
        .context("Failed to read a scheduled report")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let report = read_report(&row)?;
        let claim = Self::insert_run(&mut transaction, &report, now, 0, replica, now + lease).await?;
        transaction.commit().await.context("Failed to claim a report run")?;
        Ok(claim)
    }

    async fn record_posted(&self, execution_id: i64, channel: &str, ts: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE report_executions SET slack_channel = $2, slack_ts = $3 WHERE id = $1")
            .bind(execution_id)
            .bind(channel)
            .bind(ts)
            .execute(&self.pool)
            .await
            .context("Failed to record what a report run posted")?;
        Ok(())
    }

    async fn finish_execution(&self, execution_id: i64, end: &ExecutionEnd) -> Result<(), StoreError> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .context("Failed to start finishing a report run")?;
        let finished = end.status != ExecutionStatus::Retrying;
        let report_id: Option<i64> = sqlx::query_scalar(
            "UPDATE report_executions SET status = $2, error_code = $3, error = $4, retry_at = $5, \
             finished_at = CASE WHEN $6 THEN now() ELSE NULL END, lease_until = NULL WHERE id = $1 RETURNING report_id",
        )
        .bind(execution_id)
        .bind(end.status.as_str())
        .bind(end.error_code.map(ErrorCode::code))
        .bind(&end.error)
        .bind(end.retry_at)
        .bind(finished)
        .fetch_optional(&mut *transaction)
        .await
        .context("Failed to finish a report run")?;
        if let Some(report_id) = report_id {
            if let Some(result) = &end.last_result {
                sqlx::query("UPDATE scheduled_reports SET last_result = $2, updated_at = now() WHERE id = $1")
                    .bind(report_id)
                    .bind(encode_json(result)?)
                    .execute(&mut *transaction)
                    .await
                    .context("Failed to keep a report's last result")?;
            }
            if let Some(alert) = &end.alert {
                sqlx::query("UPDATE scheduled_reports SET alert = $2, updated_at = now() WHERE id = $1")
                    .bind(report_id)
                    .bind(encode_json(alert)?)
                    .execute(&mut *transaction)
                    .await
                    .context("Failed to keep an alert's state")?;
            }
            if let Some((channel, ts)) = &end.delivery_thread {
                sqlx::query(
                    "UPDATE scheduled_reports SET delivery_channel = $2, delivery_thread_ts = $3, updated_at = now() \
                     WHERE id = $1 AND delivery_thread_ts IS NULL",
                )
                .bind(report_id)
                .bind(channel)
                .bind(ts)
                .execute(&mut *transaction)
                .await
                .context("Failed to keep a report's thread")?;
            }
            if let Some(reason) = &end.pause {
                sqlx::query(
                    "UPDATE scheduled_reports SET state = 'paused', paused_reason = $2, updated_at = now() WHERE id = $1",
                )
                .bind(report_id)
                .bind(reason)
                .execute(&mut *transaction)
                .await
                .context("Failed to pause a scheduled report")?;
            }
        }
        transaction.commit().await.context("Failed to finish a report run")?;
        Ok(())
    }

    async fn executions(&self, report_id: i64) -> Result<Vec<ExecutionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, report_id, fire_at, status, attempts, missed, slack_channel, slack_ts, error_code \
             FROM report_executions WHERE report_id = $1 ORDER BY fire_at, id",
        )
        .bind(report_id)
        .fetch_all(&self.pool)
        .await
        .context("Failed to read a report's runs")?;
        rows.iter().map(read_execution).collect()
    }
}
