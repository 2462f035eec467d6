//! Scheduled reports and their runs (`scheduled_reports`, `report_executions`), in both stores.
//!
//! Exactly once: a run is a row keyed by (report, fire time). Claiming due work is one
//! transaction that locks the due reports (Postgres skips rows another replica holds; SQLite
//! has one writer), inserts their runs, and moves each report's next fire time on; a replica
//! that finds a run's row already there does not run it. A run whose replica died is claimed
//! again once its lease has passed, and it carries the Slack ts of what was already posted.
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{
    plan_fire_times, AlertSpec, DeliveryOptions, Destination, ErrorCode, ExecutionStatus, FirePlan, ProposedQuery,
    QueryResult, ReportState, Schedule, ScheduledReport, ThreadKey, UserId,
};

/// Most fire times one claim looks at for one report (a minutely schedule down for a day).
const MAX_DUE_PER_REPORT: usize = 2_000;

/// A schedule as it is first stored.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub origin: ThreadKey,
    pub owner: UserId,
    pub question: String,
    pub query: ProposedQuery,
    pub schedule: Schedule,
    pub alert: Option<AlertSpec>,
    pub next_fire_at: DateTime<Utc>,
}

/// A run a replica claimed: it runs it, records what it posted, and finishes it.
#[derive(Debug, Clone)]
pub struct ReportClaim {
    pub execution_id: i64,
    pub fire_at: DateTime<Utc>,
    /// 1 for the first try.
    pub attempt: u32,
    /// Missed fire times this run stands for.
    pub missed: u32,
    /// What an earlier try of this run already posted (channel, ts): updated, not posted again.
    pub posted: Option<(String, String)>,
    pub report: ScheduledReport,
}

/// How a run ended, and what its report keeps from it.
#[derive(Debug, Clone)]
pub struct ExecutionEnd {
    pub status: ExecutionStatus,
    pub error_code: Option<ErrorCode>,
    /// The engine's or Slack's own words, for operators.
    pub error: Option<String>,
    /// When the next try is due (status `retrying`).
    pub retry_at: Option<DateTime<Utc>>,
    /// The result a diff compares the next run with (`None`: keep the stored one).
    pub last_result: Option<QueryResult>,
    /// The alert's new state (`None`: unchanged).
    pub alert: Option<AlertSpec>,
    /// The schedule's own thread, when this run started it.
    pub delivery_thread: Option<(String, String)>,
    /// Pause the report with this reason (its channel is gone, its owner lost access).
    pub pause: Option<String>,
}

impl ExecutionEnd {
    pub fn status(status: ExecutionStatus) -> Self {
        Self {
            status,
            error_code: None,
            error: None,
            retry_at: None,
            last_result: None,
            alert: None,
            delivery_thread: None,
            pause: None,
        }
    }
}

/// One row of `report_executions`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub id: i64,
    pub report_id: i64,
    pub fire_at: DateTime<Utc>,
    pub status: ExecutionStatus,
    pub attempts: u32,
    pub missed: u32,
    pub slack_channel: Option<String>,
    pub slack_ts: Option<String>,
    pub error_code: Option<String>,
}

/// A report with its latest run, for lists.
#[derive(Debug, Clone)]
pub struct ReportListing {
    pub report: ScheduledReport,
    pub last_status: Option<ExecutionStatus>,
    pub last_fire_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    async fn create_report(&self, new: &NewReport) -> Result<ScheduledReport, StoreError>;
    async fn report(&self, id: i64) -> Result<Option<ScheduledReport>, StoreError>;
    /// Reports of `team` (all teams when `None`), of `owner` only when given, oldest first.
    async fn reports(&self, team: Option<&str>, owner: Option<&str>) -> Result<Vec<ReportListing>, StoreError>;
    /// Pauses, resumes or re-times a report; `false` when there is no such report.
    async fn update_report(
        &self,
        id: i64,
        state: &ReportState,
        schedule: &Schedule,
        next_fire_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Deletes a report and its runs; `false` when there is no such report.
    async fn delete_report(&self, id: i64) -> Result<bool, StoreError>;
    /// Claims, for `replica` until `now + lease`, the runs due at `now`: fire times reached by
    /// active reports (split by their catch-up policy, the missed ones recorded), tries due
    /// again, and runs whose replica's lease passed. At most about `limit` reports per call.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        replica: &str,
        lease: chrono::Duration,
        limit: usize,
    ) -> Result<Vec<ReportClaim>, StoreError>;
    /// Claims a run of report `id` at `now` outside its schedule (`threadql schedules run`).
    async fn claim_now(
        &self,
        id: i64,
        now: DateTime<Utc>,
        replica: &str,
        lease: chrono::Duration,
    ) -> Result<Option<ReportClaim>, StoreError>;
    /// Records what a run posted, as soon as Slack answered.
    async fn record_posted(&self, execution_id: i64, channel: &str, ts: &str) -> Result<(), StoreError>;
    /// Ends a try of a run (or schedules the next one), updating its report in the same
    /// transaction.
    async fn finish_execution(&self, execution_id: i64, end: &ExecutionEnd) -> Result<(), StoreError>;
    /// Runs of a report, oldest fire time first.
    async fn executions(&self, report_id: i64) -> Result<Vec<ExecutionRecord>, StoreError>;
}

/// The columns a report is read back from, by both stores (`r` is `scheduled_reports`).
pub(super) const REPORT_COLUMNS: &str = "r.id, r.team_id, r.channel_id, r.thread_ts, r.owner_id, r.question, r.query, \
     r.cron, r.timezone, r.destination, r.options, r.alert, r.state, r.paused_reason, r.delivery_channel, \
     r.delivery_thread_ts, r.last_result, r.next_fire_at";

/// A report from a row of either store (see [`REPORT_COLUMNS`]).
pub(super) fn read_report<'r, R>(row: &'r R) -> Result<ScheduledReport, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    serde_json::Value: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let read = || -> Result<ReportRow, sqlx::Error> {
        Ok(ReportRow {
            id: row.try_get("id")?,
            team: row.try_get("team_id")?,
            channel: row.try_get("channel_id")?,
            thread_ts: row.try_get("thread_ts")?,
            owner: row.try_get("owner_id")?,
            question: row.try_get("question")?,
            query: row.try_get("query")?,
            cron: row.try_get("cron")?,
            timezone: row.try_get("timezone")?,
            destination: row.try_get("destination")?,
            options: row.try_get("options")?,
            alert: row.try_get("alert")?,
            state: row.try_get("state")?,
            paused_reason: row.try_get("paused_reason")?,
            delivery_channel: row.try_get("delivery_channel")?,
            delivery_thread_ts: row.try_get("delivery_thread_ts")?,
            last_result: row.try_get("last_result")?,
            next_fire_at: row.try_get("next_fire_at")?,
        })
    };
    read()
        .map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("Failed to read a scheduled report")))?
        .decode()
}

/// A run from a `report_executions` row of either store.
pub(super) fn read_execution<'r, R>(row: &'r R) -> Result<ExecutionRecord, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let read = || -> Result<ExecutionRecord, sqlx::Error> {
        let status: String = row.try_get("status")?;
        Ok(ExecutionRecord {
            id: row.try_get("id")?,
            report_id: row.try_get("report_id")?,
            fire_at: row.try_get("fire_at")?,
            status: ExecutionStatus::parse(&status).unwrap_or(ExecutionStatus::Failed),
            attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
            missed: row.try_get::<i32, _>("missed")?.max(0) as u32,
            slack_channel: row.try_get("slack_channel")?,
            slack_ts: row.try_get("slack_ts")?,
            error_code: row.try_get("error_code")?,
        })
    };
    read().map_err(|e| StoreError::Unexpected(anyhow::Error::new(e).context("Failed to read a report run")))
}

/// A `scheduled_reports` row as read, before its JSON columns are decoded.
pub(super) struct ReportRow {
    pub id: i64,
    pub team: String,
    pub channel: String,
    pub thread_ts: String,
    pub owner: String,
    pub question: String,
    pub query: serde_json::Value,
    pub cron: String,
    pub timezone: String,
    pub destination: serde_json::Value,
    pub options: serde_json::Value,
    pub alert: Option<serde_json::Value>,
    pub state: String,
    pub paused_reason: Option<String>,
    pub delivery_channel: Option<String>,
    pub delivery_thread_ts: Option<String>,
    pub last_result: Option<serde_json::Value>,
    pub next_fire_at: DateTime<Utc>,
}

fn damaged(id: i64, what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!(
        "scheduled report {id} has an unreadable {what}: {error}"
    ))
}

impl ReportRow {
    pub fn decode(self) -> Result<ScheduledReport, StoreError> {
        let id = self.id;
        let origin = ThreadKey::parse(&self.team, &self.channel, &self.thread_ts)
            .ok_or_else(|| damaged(id, "thread key", "a part is empty"))?;
        let query: ProposedQuery = serde_json::from_value(self.query).map_err(|e| damaged(id, "query", e))?;
        let timezone: chrono_tz::Tz = self.timezone.parse().map_err(|e| damaged(id, "time zone", e))?;
        let destination: Destination =
            serde_json::from_value(self.destination).map_err(|e| damaged(id, "destination", e))?;
        let options: DeliveryOptions = serde_json::from_value(self.options).map_err(|e| damaged(id, "options", e))?;
        let schedule = Schedule::from_cron(&self.cron, timezone, destination, options)
            .map_err(|e| damaged(id, "cron expression", e))?;
        let alert = self
            .alert
            .map(serde_json::from_value::<AlertSpec>)
            .transpose()
            .map_err(|e| damaged(id, "alert", e))?;
        let last_result = self
            .last_result
            .map(serde_json::from_value::<QueryResult>)
            .transpose()
            .map_err(|e| damaged(id, "last result", e))?;
        let state = match self.state.as_str() {
            "paused" => ReportState::Paused {
                reason: self.paused_reason,
            },
            _ => ReportState::Active,
        };
        Ok(ScheduledReport {
            id,
            origin,
            owner: UserId::new(self.owner),
            question: self.question,
            query,
            schedule,
            alert,
            state,
            delivery_thread: self.delivery_channel.zip(self.delivery_thread_ts),
            last_result,
            next_fire_at: self.next_fire_at,
        })
    }
}

/// The JSON columns of a new report.
pub(super) struct EncodedReport {
    pub query: serde_json::Value,
    pub destination: serde_json::Value,
    pub options: serde_json::Value,
    pub alert: Option<serde_json::Value>,
}

pub(super) fn encode_report(new: &NewReport) -> Result<EncodedReport, StoreError> {
    let encode = |value: serde_json::Result<serde_json::Value>| {
        value.map_err(|e| StoreError::Unexpected(anyhow::anyhow!("Failed to encode a scheduled report: {e}")))
    };
    Ok(EncodedReport {
        query: encode(serde_json::to_value(&new.query))?,
        destination: encode(serde_json::to_value(&new.schedule.destination))?,
        options: encode(serde_json::to_value(&new.schedule.options))?,
        alert: new
            .alert
            .as_ref()
            .map(|a| encode(serde_json::to_value(a)))
            .transpose()?,
    })
}

pub(super) fn encode_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Unexpected(anyhow::anyhow!("Failed to encode JSON: {e}")))
}

/// What a claim does with a due report: which fire times run, which were missed, and its next
/// fire time after `now`.
pub(super) fn plan_report(report: &ScheduledReport, now: DateTime<Utc>) -> (FirePlan, DateTime<Utc>) {
    let schedule = &report.schedule;
    let mut due = vec![report.next_fire_at];
    due.extend(
        schedule
            .next_fire_times(report.next_fire_at, MAX_DUE_PER_REPORT)
            .into_iter()
            .take_while(|at| *at <= now),
    );
    let plan = plan_fire_times(&due, now, schedule.options.catch_up);
    (plan, next_fire_after(schedule, now))
}

/// The first fire time after `at` (a year on when the expression never fires again, which a
/// checked expression cannot do).
pub fn next_fire_after(schedule: &Schedule, at: DateTime<Utc>) -> DateTime<Utc> {
    schedule
        .next_fire_times(at, 1)
        .into_iter()
        .next()
        .unwrap_or(at + chrono::Duration::days(366))
}
